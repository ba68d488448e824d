//! [`Model`]: a loaded `.berth` file with its tokenizer and fast forward pass, ready to embed
//! text from many threads at once.
//!
//! ```no_run
//! use berth::{Model, ModelOptions};
//!
//! let model = Model::load("all-MiniLM-L6-v2.berth")?;
//! let emb = model.embed(&["The cat sits on the mat.", "A dog plays in the park."])?;
//! assert_eq!(emb.len(), 2);
//! let (a, b) = (emb.get(0).unwrap(), emb.get(1).unwrap());
//! let cosine: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum(); // unit vectors (MiniLM normalises)
//! println!("{} dimensions, cosine {cosine:.3}", emb.dim());
//!
//! // One thread per call instead of one per physical core, and at most 128 tokens a text.
//! let small = Model::load_with("all-MiniLM-L6-v2.berth", ModelOptions::default().threads(1).max_seq_len(128))?;
//! # Ok::<(), berth::Error>(())
//! ```

use std::path::Path;
use std::sync::Mutex;

use crate::config::Pooling;
use crate::fast::{FastModel, Workspace};
use crate::format::BerthFile;
use crate::reference::{pool_into, Inputs, Outputs};
use crate::tokenizer::{BatchEncoding, EncodeOptions, Tokenizer};
use crate::Error;

self_cell::self_cell!(
    /// The mapped file and the fast path that borrows its weights, owned together.
    struct Loaded {
        owner: BerthFile,
        #[covariant]
        dependent: FastModel,
    }
);

/// How a [`Model`] runs. Build it with its methods: `ModelOptions::default().threads(1)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelOptions {
    threads: Option<usize>,
    max_seq_len: Option<usize>,
}

impl ModelOptions {
    /// Threads per call (at least 1); the default is one per physical core.
    pub fn threads(mut self, threads: usize) -> ModelOptions {
        self.threads = Some(threads);
        self
    }

    /// The most tokens a text keeps, `[CLS]` and `[SEP]` included; longer texts are cut (and
    /// flagged). The default, and the upper bound, is the tokenizer's maximum (what
    /// sentence-transformers' `max_seq_length` was at conversion), itself at most the model's
    /// positions.
    pub fn max_seq_len(mut self, tokens: usize) -> ModelOptions {
        self.max_seq_len = Some(tokens);
        self
    }
}

/// Sentence embeddings: one vector of [`Embeddings::dim`] values per input text, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Embeddings {
    dim: usize,
    data: Vec<f32>,
    truncated: Vec<bool>,
}

impl Embeddings {
    /// The number of texts.
    pub fn len(&self) -> usize {
        self.truncated.len()
    }

    /// Whether there are no texts.
    pub fn is_empty(&self) -> bool {
        self.truncated.is_empty()
    }

    /// Values per embedding (the model's hidden size).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Text `i`'s embedding.
    pub fn get(&self, i: usize) -> Option<&[f32]> {
        (i < self.len()).then(|| &self.data[i * self.dim..(i + 1) * self.dim])
    }

    /// The embeddings in order.
    pub fn iter(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.dim.max(1)).take(self.len())
    }

    /// All embeddings, row-major (`len x dim`).
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Whether text `i` was cut to the maximum sequence length.
    pub fn truncated(&self, i: usize) -> bool {
        self.truncated.get(i).copied().unwrap_or(false)
    }
}

/// One call's working memory, reused by later calls.
#[derive(Debug, Default)]
struct Scratch {
    ws: Workspace,
    enc: BatchEncoding,
    ids: Vec<i64>,
    mask: Vec<i64>,
    types: Vec<i64>,
    out: Outputs,
    acc: Vec<f64>,
}

/// A `.berth` model loaded for inference: the mapped weights, the tokenizer, and the fast
/// forward pass on this CPU's kernels. `Send + Sync`: share one (in an `Arc`, or by
/// reference) between threads; each call takes working memory from a pool, holding its lock
/// only to take and to return it.
pub struct Model {
    loaded: Loaded,
    tokenizer: Tokenizer,
    max_seq_len: usize,
    scratch: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for Model {
    // The fast path (config, kernels) and the options; not the pooled working memory.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("fast", self.fast())
            .field("threads", &self.fast().threads())
            .field("max_seq_len", &self.max_seq_len)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Maps and loads a `.berth` file with the default options.
    pub fn load(path: impl AsRef<Path>) -> Result<Model, Error> {
        Model::load_with(path, ModelOptions::default())
    }

    /// Maps and loads a `.berth` file.
    pub fn load_with(path: impl AsRef<Path>, options: ModelOptions) -> Result<Model, Error> {
        Model::new(BerthFile::open(path)?, options)
    }

    /// Loads a `.berth` file held in memory (copied into an aligned buffer).
    pub fn from_bytes(bytes: &[u8], options: ModelOptions) -> Result<Model, Error> {
        Model::new(BerthFile::from_bytes(bytes)?, options)
    }

    fn new(file: BerthFile, options: ModelOptions) -> Result<Model, Error> {
        let tokenizer = Tokenizer::from_file(&file).ok_or(Error::NoTokenizer)?;
        let positions = file.config().max_position_embeddings;
        let limit = tokenizer.max_length().min(positions);
        let max_seq_len = match options.max_seq_len {
            Some(n) if n < 2 || n > limit => {
                return Err(Error::BadOption {
                    reason: format!("max_seq_len {n}: must be in 2..={limit}"),
                })
            }
            Some(n) => n,
            None => limit,
        };
        if options.threads == Some(0) {
            return Err(Error::BadOption {
                reason: "threads 0: must be at least 1".into(),
            });
        }
        let loaded = Loaded::try_new(file, |f| match options.threads {
            Some(t) => FastModel::with_threads(f, t),
            None => FastModel::new(f),
        })?;
        Ok(Model {
            loaded,
            tokenizer,
            max_seq_len,
            scratch: Mutex::new(Vec::new()),
        })
    }

    /// The fast forward pass, for lower-level use (ids in, hidden states out).
    pub fn fast(&self) -> &FastModel<'_> {
        self.loaded.borrow_dependent()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The most tokens a text keeps ([`ModelOptions::max_seq_len`]).
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Sentence embeddings of `texts`, as sentence-transformers' `encode` computes them: the
    /// pooling (mean, CLS, max) and normalisation the file configures, or, for a file without
    /// sentence-transformers pooling, the mean of the token states. No texts give no
    /// embeddings. Texts longer than [`Model::max_seq_len`] tokens are cut
    /// ([`Embeddings::truncated`]).
    pub fn embed(&self, texts: &[&str]) -> Result<Embeddings, Error> {
        let dim = self.fast().config().hidden_size;
        if texts.is_empty() {
            return Ok(Embeddings {
                dim,
                ..Embeddings::default()
            });
        }
        let mut s = self.take_scratch();
        let result = self.embed_with(texts, &mut s);
        self.return_scratch(s);
        result
    }

    fn embed_with(&self, texts: &[&str], s: &mut Scratch) -> Result<Embeddings, Error> {
        let opts = EncodeOptions {
            max_length: Some(self.max_seq_len),
            ..EncodeOptions::default()
        };
        self.tokenizer.encode_batch_into(texts, &opts, &mut s.enc)?;
        let widen = |src: &[u32], dst: &mut Vec<i64>| {
            dst.clear();
            dst.extend(src.iter().map(|&v| i64::from(v)));
        };
        widen(&s.enc.input_ids, &mut s.ids);
        widen(&s.enc.attention_mask, &mut s.mask);
        widen(&s.enc.token_type_ids, &mut s.types);
        let (batch, seq) = (s.enc.batch, s.enc.seq);
        let inputs = Inputs {
            batch,
            seq,
            input_ids: &s.ids,
            attention_mask: Some(&s.mask),
            token_type_ids: Some(&s.types),
        };
        let fast = self.fast();
        fast.forward_into(&inputs, &mut s.ws, &mut s.out)?;
        let dim = fast.config().hidden_size;
        let data = match &s.out.sentence_embedding {
            Some(t) => t.data.clone(),
            None => {
                // No pooling configured: the mean of the real tokens' states.
                let h = &s.out.last_hidden_state.data;
                let mut data = vec![0.0f32; batch * dim];
                s.acc.resize(dim, 0.0);
                for (b, out) in data.chunks_exact_mut(dim).enumerate() {
                    let rows = (0..s.enc.lengths[b])
                        .map(|p| &h[(b * seq + p) * dim..(b * seq + p + 1) * dim]);
                    let first = &h[b * seq * dim..(b * seq + 1) * dim];
                    pool_into(Pooling::Mean, false, first, rows, &mut s.acc, out);
                }
                data
            }
        };
        Ok(Embeddings {
            dim,
            data,
            truncated: s.enc.truncated.clone(),
        })
    }

    fn take_scratch(&self) -> Scratch {
        let mut pool = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        pool.pop().unwrap_or_default()
    }

    fn return_scratch(&self, s: Scratch) {
        let mut pool = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        pool.push(s);
    }
}
