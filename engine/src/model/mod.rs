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

use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

use crate::config::{Head, Pooling};
use crate::fast::{FastModel, Workspace};
use crate::format::BerthFile;
use crate::reference::{pool_into, Inputs, Outputs};
use crate::tokenizer::{BatchEncoding, EncodeOptions, Encoding, Tokenizer};
use crate::Error;

mod answer;
mod classify;
mod fill;
mod tag;

pub use answer::{Answer, QaOptions};
pub use classify::{Classification, Label, Ranked, ScoreFn};
pub use fill::{Fill, FillMask};
pub use tag::{Aggregation, Entity, Tags};

self_cell::self_cell!(
    /// The mapped file and the fast path that borrows its weights, owned together.
    struct Loaded {
        owner: BerthFile,
        #[covariant]
        dependent: FastModel,
    }
);

/// The default of [`ModelOptions::max_batch_tokens`].
pub const DEFAULT_MAX_BATCH_TOKENS: usize = 16_384;

/// How a [`Model`] runs. Build it with its methods: `ModelOptions::default().threads(1)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelOptions {
    threads: Option<usize>,
    max_seq_len: Option<usize>,
    max_batch_tokens: Option<usize>,
    pooling: Option<Pooling>,
    normalize: Option<bool>,
    truncate_dim: Option<usize>,
    windows: Option<usize>,
    bf16: bool,
    bf16_attention: bool,
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

    /// The most tokens (padding included) one forward pass takes: a call with more texts runs
    /// them in several passes, in order, so that working memory stays bounded. At least
    /// [`Model::max_seq_len`]; the default is [`DEFAULT_MAX_BATCH_TOKENS`].
    pub fn max_batch_tokens(mut self, tokens: usize) -> ModelOptions {
        self.max_batch_tokens = Some(tokens);
        self
    }

    /// [`Model::embed`] pools this way instead of the way the file says.
    pub fn pooling(mut self, pooling: Pooling) -> ModelOptions {
        self.pooling = Some(pooling);
        self
    }

    /// Whether [`Model::embed`] L2-normalises. `true` normalises the final vector (after
    /// [`ModelOptions::truncate_dim`], as sentence-transformers' `normalize_embeddings`);
    /// `false` drops the file's normalisation. By default the file's setting (its
    /// sentence-transformers `Normalize` module) applies, before any dimension cut.
    pub fn normalize(mut self, normalize: bool) -> ModelOptions {
        self.normalize = Some(normalize);
        self
    }

    /// [`Model::embed`] keeps the first `dim` values of each embedding (Matryoshka models;
    /// sentence-transformers' `truncate_dim`).
    pub fn truncate_dim(mut self, dim: usize) -> ModelOptions {
        self.truncate_dim = Some(dim);
        self
    }

    /// [`Model::embed`] reads a text longer than [`Model::max_seq_len`] whole instead of
    /// cutting it: in windows of `max_seq_len` tokens (`[CLS]` and `[SEP]` included), each
    /// sharing `stride` tokens with the one before, pooled one by one and averaged, weighted
    /// by their tokens; normalisation then applies to the average. `stride` must be below
    /// `max_seq_len - 2`.
    pub fn windows(mut self, stride: usize) -> ModelOptions {
        self.windows = Some(stride);
        self
    }

    /// Runs the linear layers of an f32 or f16 file in bf16 ([`FastModel::use_bf16`]): about
    /// 1.5-1.9x faster than f32 on CPUs with AVX-512 BF16 and more with AMX (BERT-base 1 x 128
    /// on one core of a Xeon with AMX: 2.6x), at bfloat16's precision (MiniLM's embeddings:
    /// min cosine 0.99995 to f32's reference, attention's products in bf16 too). Elsewhere it
    /// computes the same values at f32 speed. int8 files are unaffected, and bf16 files
    /// (`berth convert --dtype bf16`) run in bf16 without it, with no re-packing at load.
    pub fn bf16(mut self, on: bool) -> ModelOptions {
        self.bf16 = on;
        self
    }

    /// Takes attention's products in bf16 while the linear layers keep the file's type
    /// ([`FastModel::use_bf16_attention`]): for int8 files on CPUs with AMX, where attention
    /// runs on the tiles. bf16 models (this option's [`ModelOptions::bf16`], bf16 files) do so
    /// anyway.
    pub fn bf16_attention(mut self, on: bool) -> ModelOptions {
        self.bf16_attention = on;
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

    /// Values per embedding (the model's hidden size, or [`ModelOptions::truncate_dim`]).
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

/// Tokenized rows, back to back, waiting for a forward pass.
#[derive(Debug, Default)]
struct Rows {
    ids: Vec<u32>,
    types: Vec<u32>,
    offsets: Vec<(usize, usize)>,
    special: Vec<u8>,
    continues: Vec<bool>,
    /// Row `i` is `starts[i]..starts[i + 1]`.
    starts: Vec<usize>,
    truncated: Vec<bool>,
}

impl Rows {
    fn clear(&mut self) {
        self.ids.clear();
        self.types.clear();
        self.offsets.clear();
        self.special.clear();
        self.continues.clear();
        self.starts.clear();
        self.starts.push(0);
        self.truncated.clear();
    }

    fn push(&mut self, e: &Encoding) {
        self.ids.extend_from_slice(&e.ids);
        self.types.extend_from_slice(&e.type_ids);
        self.offsets.extend_from_slice(&e.offsets);
        self.special.extend_from_slice(&e.special_tokens_mask);
        self.continues.extend_from_slice(&e.continues_word);
        self.starts.push(self.ids.len());
        self.truncated.push(e.truncated);
    }

    fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    fn range(&self, row: usize) -> Range<usize> {
        self.starts[row]..self.starts[row + 1]
    }
}

/// A forward pass's inputs and outputs.
#[derive(Debug, Default)]
struct Pass {
    ws: Workspace,
    ids: Vec<i64>,
    mask: Vec<i64>,
    types: Vec<i64>,
    out: Outputs,
}

/// One call's working memory, reused by later calls.
#[derive(Debug, Default)]
struct Scratch {
    rows: Rows,
    pass: Pass,
    one: Encoding,
    two: Encoding,
    acc: Vec<f64>,
    /// One embedding before its dimension cut, and a long text's window sum.
    pooled: Vec<f32>,
    sum: Vec<f64>,
    probs: Vec<f32>,
    /// QA: candidate spans; the context windows of the rows.
    spans: Vec<(f32, u32, u32)>,
    windows: Vec<Range<usize>>,
    /// Fill-mask: the best candidates of a mask, and a filled row's ids.
    best: Vec<(f32, u32)>,
    ids: Vec<u32>,
    /// embed with windows: each row's text.
    owners: Vec<usize>,
}

/// A `.berth` model loaded for inference: the mapped weights, the tokenizer, and the fast
/// forward pass on this CPU's kernels. `Send + Sync`: share one (in an `Arc`, or by
/// reference) between threads; each call takes working memory from a pool, holding its lock
/// only to take and to return it.
///
/// Each task needs its head: [`Model::embed`] any model, [`Model::classify`] a
/// sequence-classification one, [`Model::tag`] token classification, [`Model::answer`]
/// question answering, [`Model::fill_mask`] a masked LM; the wrong one gives
/// [`Error::WrongHead`].
pub struct Model {
    loaded: Loaded,
    tokenizer: Tokenizer,
    max_seq_len: usize,
    max_batch_tokens: usize,
    pooling: Option<Pooling>,
    normalize: Option<bool>,
    truncate_dim: Option<usize>,
    windows: Option<usize>,
    scratch: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for Model {
    // The fast path (config, kernels) and the options; not the pooled working memory.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("fast", self.fast())
            .field("threads", &self.fast().threads())
            .field("max_seq_len", &self.max_seq_len)
            .field("max_batch_tokens", &self.max_batch_tokens)
            .field("pooling", &self.pooling)
            .field("normalize", &self.normalize)
            .field("truncate_dim", &self.truncate_dim)
            .field("windows", &self.windows)
            .finish_non_exhaustive()
    }
}

fn bad_option(reason: String) -> Error {
    Error::BadOption { reason }
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
        let config = file.config();
        let limit = tokenizer.max_length().min(config.max_position_embeddings);
        let max_seq_len = match options.max_seq_len {
            Some(n) if n < 2 || n > limit => {
                return Err(bad_option(format!(
                    "max_seq_len {n}: must be in 2..={limit}"
                )))
            }
            Some(n) => n,
            None => limit,
        };
        let max_batch_tokens = options.max_batch_tokens.unwrap_or(DEFAULT_MAX_BATCH_TOKENS);
        if max_batch_tokens < max_seq_len {
            return Err(bad_option(format!(
                "max_batch_tokens {max_batch_tokens}: must be at least max_seq_len ({max_seq_len})"
            )));
        }
        if options.threads == Some(0) {
            return Err(bad_option("threads 0: must be at least 1".into()));
        }
        if options.pooling == Some(Pooling::None) {
            return Err(bad_option(
                "pooling none: embeddings need a pooling (mean, cls, max, mean_sqrt_len)".into(),
            ));
        }
        let hidden = config.hidden_size;
        if let Some(d) = options.truncate_dim.filter(|&d| d == 0 || d > hidden) {
            return Err(bad_option(format!(
                "truncate_dim {d}: must be in 1..={hidden} (the hidden size)"
            )));
        }
        if let Some(stride) = options.windows.filter(|&w| w + 2 >= max_seq_len) {
            return Err(bad_option(format!(
                "windows stride {stride}: must be below max_seq_len - 2 ({})",
                max_seq_len - 2
            )));
        }
        let loaded = Loaded::try_new(file, |f| {
            let mut fast = match options.threads {
                Some(t) => FastModel::with_threads(f, t),
                None => FastModel::new(f),
            }?;
            if options.bf16 {
                fast.use_bf16();
            }
            if options.bf16_attention {
                fast.use_bf16_attention();
            }
            Ok::<_, Error>(fast)
        })?;
        Ok(Model {
            loaded,
            tokenizer,
            max_seq_len,
            max_batch_tokens,
            pooling: options.pooling,
            normalize: options.normalize,
            truncate_dim: options.truncate_dim,
            windows: options.windows,
            scratch: Mutex::new(Vec::new()),
        })
    }

    /// The fast forward pass, for lower-level use (ids in, hidden states out).
    pub fn fast(&self) -> &FastModel<'_> {
        self.loaded.borrow_dependent()
    }

    /// The model's configuration (head, labels, sizes).
    pub fn config(&self) -> &crate::config::ModelConfig {
        self.fast().config()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The most tokens a text keeps ([`ModelOptions::max_seq_len`]).
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Values per embedding: the hidden size, or [`ModelOptions::truncate_dim`].
    pub fn embedding_dim(&self) -> usize {
        self.truncate_dim.unwrap_or(self.config().hidden_size)
    }

    /// Tokenizes `texts` into a padded batch, cut to [`Model::max_seq_len`]: the input of
    /// [`Model::forward`], for custom heads.
    ///
    /// ```no_run
    /// let model = berth::Model::load("all-MiniLM-L6-v2.berth")?;
    /// let batch = model.encode(&["Hello world!", "A second, longer text."])?;
    /// assert_eq!(batch.input_ids.len(), batch.batch * batch.seq); // right-padded with [PAD]
    /// let out = model.forward(&batch)?;
    /// let hidden = model.config().hidden_size;
    /// let cls_of_first: &[f32] = &out.last_hidden_state.data[..hidden];
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn encode(&self, texts: &[&str]) -> Result<BatchEncoding, Error> {
        let mut batch = BatchEncoding::default();
        self.tokenizer
            .encode_batch_into(texts, &self.encode_options(), &mut batch)?;
        Ok(batch)
    }

    /// Runs the model on a batch from [`Model::encode`] (or built by hand: ids are checked)
    /// and returns the hidden states and the head's outputs, as Hugging Face's model call
    /// does.
    pub fn forward(&self, batch: &BatchEncoding) -> Result<Outputs, Error> {
        self.with_scratch(|s| {
            let p = &mut s.pass;
            let widen = |src: &[u32], dst: &mut Vec<i64>| {
                dst.clear();
                dst.extend(src.iter().map(|&v| i64::from(v)));
            };
            widen(&batch.input_ids, &mut p.ids);
            widen(&batch.attention_mask, &mut p.mask);
            widen(&batch.token_type_ids, &mut p.types);
            let inputs = Inputs {
                batch: batch.batch,
                seq: batch.seq,
                input_ids: &p.ids,
                attention_mask: Some(&p.mask),
                token_type_ids: Some(&p.types),
            };
            let mut out = Outputs::default();
            self.fast().forward_into(&inputs, &mut p.ws, &mut out)?;
            Ok(out)
        })
    }

    /// Sentence embeddings of `texts`, as sentence-transformers' `encode` computes them: the
    /// pooling (mean, CLS, max) and normalisation the file configures (or the options
    /// override), or, for a file without sentence-transformers pooling, the mean of the token
    /// states. No texts give no embeddings. Texts longer than [`Model::max_seq_len`] tokens
    /// are cut ([`Embeddings::truncated`]), or with [`ModelOptions::windows`] read whole.
    ///
    /// ```no_run
    /// use berth::{Model, ModelOptions};
    ///
    /// // Matryoshka-style: the first 128 values, normalised again; long texts read whole.
    /// let options = ModelOptions::default().truncate_dim(128).normalize(true).windows(32);
    /// let model = Model::load_with("all-MiniLM-L6-v2.berth", options)?;
    /// let emb = model.embed(&["A long report ...", "A short note."])?;
    /// assert_eq!(emb.dim(), 128);
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn embed(&self, texts: &[&str]) -> Result<Embeddings, Error> {
        let cfg = self.config();
        let hidden = cfg.hidden_size;
        let dim = self.embedding_dim();
        let pooling = match (self.pooling, cfg.pooling) {
            (Some(p), _) => p,
            (None, Pooling::None) => Pooling::Mean,
            (None, p) => p,
        };
        let in_model = cfg.normalize && self.normalize != Some(false);
        let after_cut = self.normalize == Some(true);
        let mut data = vec![0.0f32; texts.len() * dim];
        let truncated = self.with_scratch(|s| {
            s.owners.clear();
            match self.windows {
                None => self.stage_texts(texts, s)?,
                Some(stride) => self.stage_windows(texts, stride, s)?,
            }
            let Scratch {
                rows,
                pass,
                acc,
                pooled: full,
                sum,
                owners,
                ..
            } = s;
            acc.resize(hidden, 0.0);
            full.resize(hidden, 0.0);
            // A text's windows come one after the other: their pooled vectors add up here,
            // weighted by their tokens, until the next text's first row.
            sum.clear();
            sum.resize(hidden, 0.0);
            let mut weight = 0.0f64;
            self.run_rows(rows, pass, |row, b, seq, out| {
                let h = &out.last_hidden_state.data;
                let at = |p: usize| &h[(b * seq + p) * hidden..(b * seq + p + 1) * hidden];
                let len = rows.range(row).len();
                let text = owners.get(row).copied().unwrap_or(row);
                let alone = owners.is_empty()
                    || (owners.get(row + 1) != Some(&text)
                        && (row == 0 || owners[row - 1] != text));
                if alone {
                    let e = &mut data[text * dim..(text + 1) * dim];
                    pool_into(pooling, in_model, at(0), (0..len).map(at), acc, full);
                    e.copy_from_slice(&full[..dim]);
                    if after_cut {
                        normalize(e);
                    }
                    return Ok(());
                }
                pool_into(pooling, false, at(0), (0..len).map(at), acc, full);
                for (s, &v) in sum.iter_mut().zip(full.iter()) {
                    *s += f64::from(v) * len as f64;
                }
                weight += len as f64;
                if owners.get(row + 1) != Some(&text) {
                    // The text's last window: the weighted mean, then normalisation.
                    for (f, s) in full.iter_mut().zip(sum.iter()) {
                        *f = (*s / weight) as f32;
                    }
                    if in_model {
                        normalize(full);
                    }
                    let e = &mut data[text * dim..(text + 1) * dim];
                    e.copy_from_slice(&full[..dim]);
                    if after_cut {
                        normalize(e);
                    }
                    sum.fill(0.0);
                    weight = 0.0;
                }
                Ok(())
            })?;
            Ok(match owners.is_empty() {
                true => rows.truncated.clone(),
                false => vec![false; texts.len()],
            })
        })?;
        Ok(Embeddings {
            dim,
            data,
            truncated,
        })
    }

    fn encode_options(&self) -> EncodeOptions {
        EncodeOptions {
            max_length: Some(self.max_seq_len),
            ..EncodeOptions::default()
        }
    }

    /// Tokenizes `texts` into `s.rows`.
    fn stage_texts(&self, texts: &[&str], s: &mut Scratch) -> Result<(), Error> {
        let opts = self.encode_options();
        s.rows.clear();
        for t in texts {
            self.tokenizer.encode_into(t, &opts, &mut s.one)?;
            s.rows.push(&s.one);
        }
        Ok(())
    }

    /// Tokenizes `texts` into `s.rows`, a text longer than the maximum as windows of it
    /// (`stride` tokens shared), with each row's text in `s.owners`.
    fn stage_windows(&self, texts: &[&str], stride: usize, s: &mut Scratch) -> Result<(), Error> {
        let whole = EncodeOptions {
            max_length: Some(usize::MAX),
            add_special_tokens: false,
            ..EncodeOptions::default()
        };
        let room = self.max_seq_len - 2;
        let (cls, sep) = (self.tokenizer.cls_id(), self.tokenizer.sep_id());
        s.rows.clear();
        for (text, t) in texts.iter().enumerate() {
            self.tokenizer.encode_into(t, &whole, &mut s.one)?;
            let n = s.one.len();
            let mut start = 0;
            loop {
                let end = (start + room).min(n);
                let rows = &mut s.rows;
                rows.ids.push(cls);
                rows.ids.extend_from_slice(&s.one.ids[start..end]);
                rows.ids.push(sep);
                rows.types.resize(rows.ids.len(), 0);
                rows.offsets.resize(rows.ids.len(), (0, 0));
                rows.special.resize(rows.ids.len(), 0);
                rows.continues.resize(rows.ids.len(), false);
                rows.starts.push(rows.ids.len());
                rows.truncated.push(false);
                s.owners.push(text);
                if end == n {
                    break;
                }
                start += room - stride;
            }
        }
        Ok(())
    }

    /// Runs `rows` through the model in passes of at most `max_batch_tokens` (padded)
    /// tokens, in order, and hands each row to `f` as `(row, place in the pass, padded length,
    /// the pass's outputs)`.
    fn run_rows(
        &self,
        rows: &Rows,
        pass: &mut Pass,
        mut f: impl FnMut(usize, usize, usize, &Outputs) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let Pass {
            ws,
            ids,
            mask,
            types,
            out,
        } = pass;
        let n = rows.len();
        let pad = i64::from(self.tokenizer.pad_id());
        let mut start = 0;
        while start < n {
            let (mut end, mut seq) = (start, 0);
            while end < n {
                let longest = seq.max(rows.range(end).len());
                if end > start && longest * (end + 1 - start) > self.max_batch_tokens {
                    break;
                }
                seq = longest;
                end += 1;
            }
            let batch = end - start;
            ids.clear();
            ids.resize(batch * seq, pad);
            mask.clear();
            mask.resize(batch * seq, 0);
            types.clear();
            types.resize(batch * seq, 0);
            for (b, row) in (start..end).enumerate() {
                for (p, i) in rows.range(row).enumerate() {
                    ids[b * seq + p] = i64::from(rows.ids[i]);
                    mask[b * seq + p] = 1;
                    types[b * seq + p] = i64::from(rows.types[i]);
                }
            }
            let inputs = Inputs {
                batch,
                seq,
                input_ids: ids,
                attention_mask: Some(mask),
                token_type_ids: Some(types),
            };
            self.fast().forward_into(&inputs, ws, out)?;
            for (b, row) in (start..end).enumerate() {
                f(row, b, seq, out)?;
            }
            start = end;
        }
        Ok(())
    }

    /// Runs `f` with working memory from the pool, and returns the memory to it.
    fn with_scratch<T>(
        &self,
        f: impl FnOnce(&mut Scratch) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut s = {
            let mut pool = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            pool.pop().unwrap_or_default()
        };
        let result = f(&mut s);
        let mut pool = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        pool.push(s);
        result
    }

    /// Fails unless the model has `head`.
    fn need(&self, task: &'static str, head: Head) -> Result<(), Error> {
        let has = self.config().head;
        match has == head {
            true => Ok(()),
            false => Err(Error::WrongHead {
                task,
                needs: head.architecture(),
                has: has.architecture(),
            }),
        }
    }
}

/// Scales `v` to unit length (a zero vector stays zero), as `torch.nn.functional.normalize`.
fn normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    let scale = (1.0 / norm.max(1e-12)) as f32;
    for x in v {
        *x *= scale;
    }
}
