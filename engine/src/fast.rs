//! The fast forward pass: the whole model on `berth-kernels` (GEMMs with fused bias, GELU and
//! residual epilogues, SIMD LayerNorm and softmax), with the weights read in place from the
//! mapped file, and padding-free batches.
//!
//! A batch runs as one stream of its real tokens (those whose attention mask is 1), each keeping
//! its position id: the GEMMs see only real tokens, attention runs per sequence over its own
//! tokens, and a batch costs what its real tokens cost. Masked keys get probability exactly 0
//! in transformers (the mask adds `f32::MIN`), so dropping them changes nothing for the real
//! tokens; padded positions are not computed and read as 0 in the outputs.
//!
//! Q, K and V come out side by side in one `t x 3h` buffer that attention reads at its stride;
//! int8 Q, K and V weights that share their input scales (the converter's smoothing gives them
//! one set) run as one GEMM over a copy of their packed panels made at load (3 h^2 bytes per
//! layer: 2.6 MB for MiniLM), so their input is quantised once.
//!
//! Threads: as many as the caller asks for, by default one per physical core
//! ([`physical_cores`]); a call hands itself to the model's pool once; the GEMMs split N (or M)
//! between its threads on panel boundaries, attention splits heads, and LayerNorms split rows
//! (16 Ki values a thread at least), so results are bit-identical for any thread count.
//! Attention runs per (sequence, head) in the fused online-softmax kernel
//! (`berth_kernels::attention`), which never holds more than a tile of the scores.
//! [`FastModel::forward_into`] reuses the caller's [`Workspace`] and [`Outputs`] and allocates
//! nothing once they have grown (on more than one thread, rayon's job queue takes a block per 63
//! calls). The fast path is held against [`crate::reference`] by `engine/tests/fast.rs` (every head, weight
//! type and kernel table) and `tools/tests/fast_minilm.rs` (MiniLM). On more than one thread, a
//! call keeps the pool's other workers awake until it returns (`awake`).

mod awake;

use std::borrow::Cow;
use std::ops::Range;

use berth_kernels::attention::{AttentionHead, AttentionScratch};
use berth_kernels::elementwise::LayerNormRows;
use berth_kernels::gemm::{
    self, ActGroups, Epilogue, Gemm, GemmScratch, MatMut, PackedI8, PackedI8Buf, Weights,
};
use berth_kernels::Kernels;
use half::f16;

use crate::config::{Activation, Head, ModelConfig, Pooling};
use crate::error::{FormatError, InputError};
use crate::format::{BerthFile, DType, Layout, TensorView};
use crate::reference::{activate, pool_into, validate_inputs, Inputs, Outputs, Tensor};

/// A linear layer's weights as the GEMM reads them: in place from a file that stores panels,
/// or packed at load from a row-major (format 1.0) file.
enum Packed<'f> {
    InPlace(Weights<'f>),
    F32(Vec<f32>),
    F16(Vec<f16>),
    I8(PackedI8Buf),
    /// Re-packed at load for bf16 compute ([`FastModel::use_bf16`]), or packed at load from a
    /// row-major bf16 file.
    Bf16(Vec<half::bf16>),
}

impl Packed<'_> {
    fn weights(&self) -> Weights<'_> {
        match self {
            Packed::InPlace(w) => *w,
            Packed::F32(w) => Weights::F32(w),
            Packed::F16(w) => Weights::F16(w),
            Packed::I8(w) => Weights::I8(w.view()),
            Packed::Bf16(w) => Weights::Bf16(w),
        }
    }
}

/// A linear layer: `y = x W^T + b`, `W` `[n, k]`; for int8 weights with input scales (format
/// 1.2), `y = (x * input_scale) W^T + b`, the product taken as the GEMM quantises `x`.
struct Dense<'f> {
    w: Packed<'f>,
    /// In place, or owned for a fused layer.
    bias: Cow<'f, [f32]>,
    input_scale: Option<&'f [f32]>,
    /// For int8 weights with activations quantised per group of K: the group size and the
    /// weights' sums per group ([`gemm::act_group_sums`]).
    act_groups: Option<(usize, Vec<f32>)>,
    n: usize,
    k: usize,
}

impl<'f> Dense<'f> {
    /// `{prefix}.weight`, `{prefix}.bias`, and `{prefix}.input_scale` when the file has it (the
    /// reader allows it only beside int8 weights, with the weight's K elements).
    fn load(file: &'f BerthFile, prefix: &str) -> Result<Dense<'f>, FormatError> {
        let w = tensor(file, &format!("{prefix}.weight"))?;
        let bias = f32_tensor(file, &format!("{prefix}.bias"))?;
        let name = format!("{prefix}.input_scale");
        let input_scale = match file.tensor(&name) {
            Some(_) => Some(f32_tensor(file, &name)?),
            None => None,
        };
        let mut dense = Dense::from_view(w, bias)?;
        if let Some(s) = input_scale {
            if s.len() != dense.k || !matches!(dense.w.weights(), Weights::I8(_)) {
                return Err(unreadable(&name));
            }
        }
        dense.input_scale = input_scale;
        Ok(dense)
    }

    fn from_view(w: TensorView<'f>, bias: &'f [f32]) -> Result<Dense<'f>, FormatError> {
        let &[n, k] = w.info.shape.as_slice() else {
            return Err(unreadable(&w.info.name));
        };
        let packed = match (w.info.layout, w.info.dtype) {
            (Layout::Panels, _) => {
                Packed::InPlace(w.gemm_weights().ok_or_else(|| unreadable(&w.info.name))?)
            }
            (Layout::RowMajor, DType::F32) => Packed::F32(gemm::pack_weights(
                w.as_f32().ok_or_else(|| unreadable(&w.info.name))?,
                n,
                k,
            )),
            (Layout::RowMajor, DType::F16) => Packed::F16(gemm::pack_weights(
                w.as_f16().ok_or_else(|| unreadable(&w.info.name))?,
                n,
                k,
            )),
            // The values are bf16 already: packing keeps them (verify rejects the denormals
            // that packing would flush).
            (Layout::RowMajor, DType::Bf16) => {
                Packed::Bf16(gemm::pack_weights_bf16(&w.to_f32_vec(), n, k))
            }
            (Layout::RowMajor, DType::I8) => {
                let (q, s) = w
                    .as_i8()
                    .zip(w.scales())
                    .ok_or_else(|| unreadable(&w.info.name))?;
                if q.contains(&i8::MIN) {
                    return Err(FormatError::BadPackedWeights {
                        name: w.info.name.clone(),
                        reason: "an element is -128, outside -127..=127".into(),
                    });
                }
                Packed::I8(PackedI8Buf::from_rows(q, s.to_vec(), n, k))
            }
        };
        if bias.len() != n {
            return Err(unreadable(&w.info.name));
        }
        Ok(Dense {
            w: packed,
            bias: Cow::Borrowed(bias),
            input_scale: None,
            act_groups: None,
            n,
            k,
        })
    }

    /// The weights as the GEMM takes them, with the input scales and activation groups
    /// attached.
    fn weights(&self) -> Weights<'_> {
        match self.w.weights() {
            Weights::I8(p) => Weights::I8(PackedI8 {
                input_scale: self.input_scale,
                groups: self
                    .act_groups
                    .as_ref()
                    .map(|(size, sums)| ActGroups { size: *size, sums }),
                ..p
            }),
            w => w,
        }
    }

    /// Re-packs f32 and f16 weights as bf16 (bf16 and int8 weights stay as they are); whether
    /// the layer now runs in bf16.
    fn repack_bf16(&mut self) -> bool {
        match self.w.weights() {
            Weights::Bf16(_) => return true,
            Weights::I8(_) => return false,
            Weights::F32(_) | Weights::F16(_) => {}
        }
        if let Some(w) = gemm::repack_weights_bf16(self.w.weights(), self.n, self.k) {
            self.w = Packed::Bf16(w);
        }
        true
    }

    /// Quantises this layer's activations per group of `size` elements of K (int8 weights
    /// only; a valid size, checked by the caller), or per row.
    fn set_act_group(&mut self, size: Option<usize>) {
        self.act_groups = match (self.w.weights(), size) {
            (Weights::I8(p), Some(size)) => Some((size, gemm::act_group_sums(p.q, self.k, size))),
            _ => None,
        };
    }

    /// `c = a W^T + b (+ epilogue)` for `rows` rows of `a` (row stride `lda`) into `c` (row
    /// stride `ldc`), on the threads of `run` (one scratch each).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        run: &Run<'_>,
        a: &[f32],
        lda: usize,
        rows: usize,
        epilogue: Epilogue<'_>,
        c: &mut [f32],
        ldc: usize,
        scratch: &mut [GemmScratch],
    ) {
        let p = Gemm {
            k: self.k,
            a,
            lda,
            w: self.weights(),
            bias: Some(&self.bias),
            epilogue,
            c: MatMut::new(c, rows, self.n, ldc),
        };
        match run.pool {
            Some(pool) => gemm::gemm_par(run.kernels, p, scratch, pool),
            None => run.kernels.gemm(p, &mut scratch[0]),
        }
    }
}

/// The query, key and value projections, which read the same input: one GEMM over their
/// concatenated int8 weights when they can be fused (the activations are then quantised once,
/// and N is three times wider), else three GEMMs. Either way the outputs land side by side in
/// one `t x 3h` buffer: Q in columns `0..h`, K in `h..2h`, V in `2h..3h`.
enum Qkv<'f> {
    Fused(Dense<'f>),
    Separate(Box<[Dense<'f>; 3]>),
}

impl<'f> Qkv<'f> {
    /// Fuses int8 weights of whole panels that share their input scales (the converter's
    /// smoothing gives Q, K and V one set): a copy of the three packed arrays, end to end, is
    /// the packed form of the concatenation, because each holds whole 32-channel panels.
    fn new(parts: [Dense<'f>; 3]) -> Qkv<'f> {
        let ws = parts.each_ref().map(|d| d.w.weights());
        let fusable = parts.iter().zip(&ws).all(|(d, w)| {
            matches!(w, Weights::I8(_))
                && d.n.is_multiple_of(gemm::PANEL)
                && d.k == parts[0].k
                && d.input_scale == parts[0].input_scale
        });
        if !fusable {
            return Qkv::Separate(Box::new(parts));
        }
        let mut fused = PackedI8Buf {
            q: Vec::new(),
            scale: Vec::new(),
            col_sum: Vec::new(),
        };
        for w in ws {
            if let Weights::I8(p) = w {
                fused.q.extend_from_slice(p.q);
                fused.scale.extend_from_slice(p.scale);
                fused.col_sum.extend_from_slice(p.col_sum);
            }
        }
        let bias: Vec<f32> = parts.iter().flat_map(|d| d.bias.iter().copied()).collect();
        Qkv::Fused(Dense {
            w: Packed::I8(fused),
            bias: Cow::Owned(bias),
            input_scale: parts[0].input_scale,
            act_groups: None,
            n: parts.iter().map(|d| d.n).sum(),
            k: parts[0].k,
        })
    }

    /// `x` (`t x k`) projected into `qkv` (`t x 3h`, row stride `3h`).
    fn run(&self, run: &Run<'_>, x: &[f32], t: usize, qkv: &mut [f32], g: &mut [GemmScratch]) {
        match self {
            Qkv::Fused(d) => d.run(run, x, d.k, t, Epilogue::None, qkv, d.n, g),
            Qkv::Separate(parts) => {
                let ld = parts.iter().map(|d| d.n).sum();
                let mut col = 0;
                for d in parts.iter() {
                    d.run(run, x, d.k, t, Epilogue::None, &mut qkv[col..], ld, g);
                    col += d.n;
                }
            }
        }
    }
}

/// How a call runs: the kernels, and the thread pool when there is more than one thread.
struct Run<'a> {
    kernels: &'a Kernels,
    pool: Option<&'a rayon::ThreadPool>,
}

/// A LayerNorm's parameters.
struct Norm<'f> {
    gamma: &'f [f32],
    beta: &'f [f32],
}

impl<'f> Norm<'f> {
    fn load(file: &'f BerthFile, prefix: &str) -> Result<Norm<'f>, FormatError> {
        Ok(Norm {
            gamma: f32_tensor(file, &format!("{prefix}.weight"))?,
            beta: f32_tensor(file, &format!("{prefix}.bias"))?,
        })
    }

    /// Normalises the rows of `x` in place, divided between the threads of `run` by halving
    /// (stack jobs: nothing allocated), each part whole rows and at least
    /// [`MIN_NORM_PART`] values. Rows are independent, so the bits do not depend on the split.
    fn run(&self, run: &Run<'_>, x: &mut [f32], eps: f32) {
        let cols = self.gamma.len().max(1);
        let parts = (x.len() / cols).min(x.len() / MIN_NORM_PART);
        match run.pool {
            Some(pool) if parts > 1 => {
                let parts = parts.min(pool.current_num_threads());
                pool.install(|| self.split(run.kernels, x, cols, parts, eps));
            }
            _ => self.rows(run.kernels, x, eps),
        }
    }

    /// `x` as `parts` parts of whole rows of `cols`, halving with `rayon::join`.
    fn split(&self, kernels: &Kernels, x: &mut [f32], cols: usize, parts: usize, eps: f32) {
        if parts <= 1 {
            return self.rows(kernels, x, eps);
        }
        let rows = x.len() / cols;
        let (left, right) = x.split_at_mut(rows * (parts / 2) / parts * cols);
        rayon::join(
            || self.split(kernels, left, cols, parts / 2, eps),
            || self.split(kernels, right, cols, parts - parts / 2, eps),
        );
    }

    fn rows(&self, kernels: &Kernels, x: &mut [f32], eps: f32) {
        (kernels.layer_norm)(LayerNormRows {
            x,
            residual: None,
            gamma: self.gamma,
            beta: self.beta,
            eps,
        });
    }
}

/// Fewest values a thread normalises when a LayerNorm is divided: about 0.2 ns each on one
/// core here (a row of BERT-base takes 0.15 us), so a part is about 3 us of work, more than a
/// `rayon::join` costs. BERT-base's 128 x 768 divides in 6 at most, MiniLM's 128 x 384 in 3.
const MIN_NORM_PART: usize = 16 * 1024;

/// An embedding table, f32 or f16, row-major.
enum Table<'f> {
    F32(&'f [f32]),
    F16(&'f [f16]),
}

impl<'f> Table<'f> {
    fn load(file: &'f BerthFile, name: &str) -> Result<Table<'f>, FormatError> {
        let t = tensor(file, name)?;
        match t.info.dtype {
            DType::F32 => t.as_f32().map(Table::F32),
            DType::F16 => t.as_f16().map(Table::F16),
            DType::I8 | DType::Bf16 => None,
        }
        .ok_or_else(|| unreadable(name))
    }

    /// Adds row `r` (of width `out.len()`) to `out`.
    fn add_row(&self, r: usize, out: &mut [f32]) {
        let h = out.len();
        match self {
            Table::F32(t) => {
                for (o, v) in out.iter_mut().zip(&t[r * h..(r + 1) * h]) {
                    *o += v;
                }
            }
            Table::F16(t) => {
                for (o, v) in out.iter_mut().zip(&t[r * h..(r + 1) * h]) {
                    *o += v.to_f32();
                }
            }
        }
    }

    /// The table as the weights of a GEMM (the tied masked-LM decoder), packed at load: as
    /// bf16 when the file's linear layers are bf16, else in the table's own type.
    fn packed(&self, n: usize, k: usize, bf16: bool) -> Packed<'f> {
        match (self, bf16) {
            (Table::F32(t), true) => Packed::Bf16(gemm::pack_weights_bf16(t, n, k)),
            (Table::F16(t), true) => {
                let mut wide = vec![0.0f32; t.len()];
                berth_kernels::convert::f16_to_f32(t, &mut wide);
                Packed::Bf16(gemm::pack_weights_bf16(&wide, n, k))
            }
            (Table::F32(t), false) => Packed::F32(gemm::pack_weights(t, n, k)),
            (Table::F16(t), false) => Packed::F16(gemm::pack_weights(t, n, k)),
        }
    }
}

struct Layer<'f> {
    qkv: Qkv<'f>,
    attn_out: Dense<'f>,
    attn_norm: Norm<'f>,
    up: Dense<'f>,
    down: Dense<'f>,
    out_norm: Norm<'f>,
}

// One per model: the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
enum FastHead<'f> {
    None,
    MaskedLm {
        transform: Dense<'f>,
        norm: Norm<'f>,
        decoder: Dense<'f>,
    },
    /// On the pooler output.
    Sequence(Dense<'f>),
    /// On every token (token classification; question answering with 2 labels).
    Token(Dense<'f>),
}

/// The buffers of a forward pass, grown to the largest batch seen and reused: after a warm-up
/// with the largest batch, [`FastModel::forward_into`] allocates nothing ([`FastModel::forward`]
/// allocates only the [`Outputs`] it returns). One workspace serves one call at a time; give
/// each calling thread its own.
#[derive(Debug, Default)]
pub struct Workspace {
    /// Real tokens: (id, type, position).
    tokens: Vec<(usize, usize, usize)>,
    /// Each sequence's range of real tokens, and its batch index.
    seqs: Vec<(Range<usize>, usize)>,
    x: Vec<f32>,
    /// Q, K and V side by side, `t x 3h`.
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    attn: Vec<f32>,
    inter: Vec<f32>,
    /// One per thread.
    gemm: Vec<GemmScratch>,
    /// One per thread.
    heads: Vec<HeadScratch>,
    /// The output steps: first tokens, pooler output, head output, masked-LM transform, and
    /// the pooling accumulator.
    firsts: Vec<f32>,
    pooled: Vec<f32>,
    head: Vec<f32>,
    transform: Vec<f32>,
    pool_acc: Vec<f64>,
}

/// What one thread's attention heads need.
#[derive(Debug, Default)]
struct HeadScratch {
    attention: AttentionScratch,
}

/// The first `len` elements of `v`, grown (with zeros) if it is shorter: a buffer that only
/// allocates until it has seen the largest batch.
fn grow<T: Copy + Default>(v: &mut Vec<T>, len: usize) -> &mut [T] {
    if v.len() < len {
        v.resize(len, T::default());
    }
    &mut v[..len]
}

/// `t` reshaped to `shape` and zeroed, in its own buffers (no allocation once they are large
/// enough).
fn reuse<'t>(t: &'t mut Tensor, shape: &[usize]) -> &'t mut [f32] {
    t.shape.clear();
    t.shape.extend_from_slice(shape);
    t.data.clear();
    t.data.resize(shape.iter().product(), 0.0);
    &mut t.data
}

/// [`reuse`] on an optional output, made on first use.
fn reuse_opt<'t>(t: &'t mut Option<Tensor>, shape: &[usize]) -> &'t mut [f32] {
    reuse(t.get_or_insert_with(Tensor::default), shape)
}

/// Column `col` of the real tokens' rows of `src` (`width` wide) into `dst` (`[batch, seq]`)
/// at each token's position; padded positions stay as they are (0).
fn scatter_column(
    seqs: &[(Range<usize>, usize)],
    tokens: &[(usize, usize, usize)],
    seq: usize,
    src: &[f32],
    width: usize,
    col: usize,
    dst: &mut [f32],
) {
    for (r, b) in seqs {
        for i in r.clone() {
            dst[b * seq + tokens[i].2] = src[i * width + col];
        }
    }
}

/// The model on the fast path, borrowing its weights from a loaded file.
pub struct FastModel<'f> {
    config: ModelConfig,
    kernels: &'static Kernels,
    threads: usize,
    /// With more than one thread: the pool every call runs on.
    pool: Option<rayon::ThreadPool>,
    word: Table<'f>,
    position: Table<'f>,
    token_type: Table<'f>,
    emb_norm: Norm<'f>,
    layers: Vec<Layer<'f>>,
    pooler: Option<Dense<'f>>,
    head: FastHead<'f>,
    act_grouping: ActGrouping,
    bf16: bool,
    /// Attention's products in bf16 without the linear layers ([`FastModel::use_bf16_attention`]).
    bf16_attention: bool,
}

/// How the int8 layers quantise their activations: each row of a layer's input in groups of
/// that many consecutive elements, each group with its own scale and zero point (a multiple of
/// 4 in `4..=512`), or (`None`) each row whole. `hidden` is for the layers that read hidden
/// states (query, key and value, attention output, FFN up projection, pooler, heads);
/// `intermediate` for the FFN down projection, which reads the GELU output, whose outliers
/// carry most of the int8 error. Smaller groups are more accurate and slower: each group costs
/// the GEMM a conversion and two multiply-adds per output vector (docs/KERNELS.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActGrouping {
    pub hidden: Option<usize>,
    pub intermediate: Option<usize>,
}

impl ActGrouping {
    /// One scale and zero point per row (token) for every layer: the fastest.
    pub const PER_ROW: ActGrouping = ActGrouping {
        hidden: None,
        intermediate: None,
    };
}

/// The grouping a [`FastModel`] starts with: 128 for the hidden-state layers and 64 for the
/// down projection. On all-MiniLM-L6-v2 (smoothed int8 file, the 48 reference sentences) it
/// measured min cosine 0.99858 to sentence-transformers on AVX-512 (0.99859 with the GELU
/// before 2026-11-27, 0.99858 before the quantiser rounded to even), against 0.99674 per row,
/// 0.99825 with 128 everywhere and 0.99849 with 64 everywhere (those three with the earlier
/// rounding; tools/examples/int8_study.rs), and 0.99760 per row for the hidden-state layers
/// with 64 for the down projection (with the earlier GELU): those layers need groups too.
pub const DEFAULT_ACT_GROUPING: ActGrouping = ActGrouping {
    hidden: Some(128),
    intermediate: Some(64),
};

impl std::fmt::Debug for FastModel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastModel")
            .field("config", &self.config)
            .field("isa", &self.kernels.isa)
            .field("int8", &self.kernels.int8)
            .field("bf16", &self.bf16.then_some(self.kernels.bf16))
            .field("bf16_attention", &self.attention_is_bf16())
            .finish()
    }
}

impl<'f> FastModel<'f> {
    /// Builds the fast path over `file` with this process's kernels ([`berth_kernels::kernels`])
    /// on [`physical_cores`] threads. Weights stored in panels are used in place; row-major ones
    /// (format 1.0) are packed now.
    pub fn new(file: &'f BerthFile) -> Result<FastModel<'f>, crate::Error> {
        FastModel::with_threads(file, physical_cores())
    }

    /// As [`FastModel::new`], on `threads` threads (at least 1).
    pub fn with_threads(
        file: &'f BerthFile,
        threads: usize,
    ) -> Result<FastModel<'f>, crate::Error> {
        let kernels = berth_kernels::kernels()?;
        Ok(FastModel::with_kernels(file, kernels, threads)?)
    }

    /// Builds the fast path with a given kernel table (tests run every table) on `threads`
    /// threads (at least 1). Results are bit-identical for any thread count: the GEMMs split
    /// N on panel boundaries and attention splits heads, so every value sees the same
    /// operations.
    pub fn with_kernels(
        file: &'f BerthFile,
        kernels: &'static Kernels,
        threads: usize,
    ) -> Result<FastModel<'f>, FormatError> {
        let threads = threads.max(1);
        let pool = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("berth-{i}"))
                    .build()
                    .map_err(|e| FormatError::BadConfig {
                        reason: format!("cannot start {threads} threads: {e}"),
                    })?,
            )
        } else {
            None
        };
        let cfg = file.config().clone();
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for l in 0..cfg.num_layers {
            let p = format!("encoder.layer.{l}");
            layers.push(Layer {
                qkv: Qkv::new([
                    Dense::load(file, &format!("{p}.attention.self.query"))?,
                    Dense::load(file, &format!("{p}.attention.self.key"))?,
                    Dense::load(file, &format!("{p}.attention.self.value"))?,
                ]),
                attn_out: Dense::load(file, &format!("{p}.attention.output.dense"))?,
                attn_norm: Norm::load(file, &format!("{p}.attention.output.LayerNorm"))?,
                up: Dense::load(file, &format!("{p}.intermediate.dense"))?,
                down: Dense::load(file, &format!("{p}.output.dense"))?,
                out_norm: Norm::load(file, &format!("{p}.output.LayerNorm"))?,
            });
        }
        let word = Table::load(file, "embeddings.word_embeddings.weight")?;
        // A file with bf16 linear weights (format 1.3) runs them in bf16 as they are; the tied
        // decoder, packed at load from the embeddings, follows them.
        let bf16_file = file.tensors().any(|t| t.info.dtype == DType::Bf16);
        let pooler = if cfg.has_pooler {
            Some(Dense::load(file, "pooler.dense")?)
        } else {
            None
        };
        let head = match cfg.head {
            Head::None => FastHead::None,
            Head::MaskedLm => {
                let bias = f32_tensor(file, "cls.predictions.bias")?;
                let decoder = if cfg.tied_decoder {
                    Dense {
                        w: word.packed(cfg.vocab_size, cfg.hidden_size, bf16_file),
                        bias: Cow::Borrowed(bias),
                        input_scale: None,
                        act_groups: None,
                        n: cfg.vocab_size,
                        k: cfg.hidden_size,
                    }
                } else {
                    Dense::from_view(tensor(file, "cls.predictions.decoder.weight")?, bias)?
                };
                FastHead::MaskedLm {
                    transform: Dense::load(file, "cls.predictions.transform.dense")?,
                    norm: Norm::load(file, "cls.predictions.transform.LayerNorm")?,
                    decoder,
                }
            }
            Head::SequenceClassification => FastHead::Sequence(Dense::load(file, "classifier")?),
            Head::TokenClassification => FastHead::Token(Dense::load(file, "classifier")?),
            Head::QuestionAnswering => FastHead::Token(Dense::load(file, "qa_outputs")?),
        };
        let mut model = FastModel {
            word,
            position: Table::load(file, "embeddings.position_embeddings.weight")?,
            token_type: Table::load(file, "embeddings.token_type_embeddings.weight")?,
            emb_norm: Norm::load(file, "embeddings.LayerNorm")?,
            layers,
            pooler,
            head,
            kernels,
            threads,
            pool,
            act_grouping: ActGrouping::PER_ROW,
            bf16: bf16_file,
            bf16_attention: false,
            config: cfg,
        };
        model.apply_act_grouping(DEFAULT_ACT_GROUPING);
        Ok(model)
    }

    /// How the int8 layers quantise their activations ([`ActGrouping`]; the default is
    /// [`DEFAULT_ACT_GROUPING`]). Files without int8 weights are unaffected. An invalid size
    /// is an error, and leaves the model as it was.
    pub fn set_act_grouping(&mut self, grouping: ActGrouping) -> Result<(), crate::Error> {
        for size in [grouping.hidden, grouping.intermediate]
            .into_iter()
            .flatten()
        {
            if !size.is_multiple_of(4) || !(4..=gemm::MAX_ACT_GROUP).contains(&size) {
                return Err(crate::Error::BadOption {
                    reason: format!(
                        "activation group size {size}: must be a multiple of 4 in 4..={}",
                        gemm::MAX_ACT_GROUP
                    ),
                });
            }
        }
        self.apply_act_grouping(grouping);
        Ok(())
    }

    /// The int8 activation grouping ([`FastModel::set_act_grouping`]).
    pub fn act_grouping(&self) -> ActGrouping {
        self.act_grouping
    }

    fn apply_act_grouping(&mut self, grouping: ActGrouping) {
        self.act_grouping = grouping;
        self.for_each_dense(|d, down| {
            d.set_act_group(match down {
                true => grouping.intermediate,
                false => grouping.hidden,
            })
        });
    }

    /// Runs every linear layer (and the tied masked-LM decoder) in bf16: float weights (f32,
    /// f16) are re-packed as bfloat16 now, and their GEMMs round activations to bfloat16 and
    /// sum the products in f32 (AMX `tdpbf16ps` tiles where the CPU and OS allow them,
    /// `vdpbf16ps` on CPUs with AVX-512 BF16, the same operations widened elsewhere:
    /// docs/KERNELS.md). int8 layers are unchanged, and bf16 layers (a file converted with
    /// `--dtype bf16`, which runs so without this call) are used in place. Attention then
    /// takes its products in bf16 too (`Kernels::attention_bf16`: Q, K, V and the softmax
    /// weights rounded, the softmax itself in f32). Embeddings, LayerNorm and the epilogues
    /// stay f32. The re-packed weights take half the bytes of f32 ones, in memory of their
    /// own. A model with no float layers (an int8 file) is left as it was.
    pub fn use_bf16(&mut self) {
        let mut any = false;
        self.for_each_dense(|d, _| any |= d.repack_bf16());
        self.bf16 |= any;
    }

    /// Whether some linear layers run in bf16 (a bf16 file, or [`FastModel::use_bf16`] on a
    /// float file).
    pub fn is_bf16(&self) -> bool {
        self.bf16
    }

    /// Takes attention's products in bf16 (`Kernels::attention_bf16`, as bf16 models do: Q, K,
    /// V and the softmax weights rounded to bfloat16, the softmax in f32) while the linear
    /// layers keep their own type: for int8 models on CPUs where bf16 attention is the faster
    /// one (AMX tiles; AVX-512 BF16: 0.9-0.95x the time of int8 with f32 attention, README),
    /// at an error far below int8's (MiniLM min cosine 0.99833 against 0.99858). Elsewhere the
    /// same values come from widened f32 instructions, slower than f32 attention.
    pub fn use_bf16_attention(&mut self) {
        self.bf16_attention = true;
    }

    /// Whether attention takes its products in bf16 (a bf16 model, or
    /// [`FastModel::use_bf16_attention`]).
    pub fn attention_is_bf16(&self) -> bool {
        self.bf16 || self.bf16_attention
    }

    /// The bytes of linear-layer weights one forward pass reads (every layer's packed weights
    /// as the GEMMs take them: bf16 after [`FastModel::use_bf16`], the fused Q, K, V copy of
    /// int8 files, the head's): the traffic that bounds a pass when weight bandwidth does.
    /// A GEMM of more rows than its M block (256) reads them again per block.
    pub fn weight_bytes(&self) -> usize {
        let mut total = 0;
        let mut add = |d: &Dense<'_>| total += d.w.weights().bytes();
        for l in &self.layers {
            match &l.qkv {
                Qkv::Fused(d) => add(d),
                Qkv::Separate(parts) => parts.iter().for_each(&mut add),
            }
            [&l.attn_out, &l.up, &l.down].into_iter().for_each(&mut add);
        }
        self.pooler.iter().for_each(&mut add);
        match &self.head {
            FastHead::None => {}
            FastHead::MaskedLm {
                transform, decoder, ..
            } => [transform, decoder].into_iter().for_each(&mut add),
            FastHead::Sequence(d) | FastHead::Token(d) => add(d),
        }
        total
    }

    /// Calls `f` on every linear layer, with whether it is an FFN down projection.
    fn for_each_dense(&mut self, mut f: impl FnMut(&mut Dense<'f>, bool)) {
        for l in &mut self.layers {
            match &mut l.qkv {
                Qkv::Fused(d) => f(d, false),
                Qkv::Separate(parts) => parts.iter_mut().for_each(|d| f(d, false)),
            }
            f(&mut l.attn_out, false);
            f(&mut l.up, false);
            f(&mut l.down, true);
        }
        if let Some(p) = &mut self.pooler {
            f(p, false);
        }
        match &mut self.head {
            FastHead::None => {}
            FastHead::MaskedLm {
                transform, decoder, ..
            } => {
                f(transform, false);
                f(decoder, false);
            }
            FastHead::Sequence(d) | FastHead::Token(d) => f(d, false),
        }
    }

    /// The number of threads a call runs on.
    pub fn threads(&self) -> usize {
        self.threads
    }

    fn run(&self) -> Run<'_> {
        Run {
            kernels: self.kernels,
            pool: self.pool.as_ref(),
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The kernel table this model runs on.
    pub fn kernels(&self) -> &'static Kernels {
        self.kernels
    }

    /// Runs a batch, taking the same inputs as [`crate::reference::ReferenceModel::forward`]
    /// and giving the same outputs at every real position (padded positions read 0). A
    /// sequence whose first token is masked is refused when the model reads that token (the
    /// pooler, CLS pooling), since padded tokens are not computed.
    pub fn forward(&self, inputs: &Inputs<'_>, ws: &mut Workspace) -> Result<Outputs, InputError> {
        let mut out = Outputs::default();
        self.forward_into(inputs, ws, &mut out)?;
        Ok(out)
    }

    /// [`FastModel::forward`] into `out`, reusing its buffers: once `ws` and `out` have seen a
    /// batch as large, the call allocates nothing (engine/tests/alloc.rs counts). Outputs the
    /// model does not produce are set to `None`; after an error `out` holds what it held.
    pub fn forward_into(
        &self,
        inputs: &Inputs<'_>,
        ws: &mut Workspace,
        out: &mut Outputs,
    ) -> Result<(), InputError> {
        self.on_pool(|| self.forward_on_pool(inputs, ws, out))
    }

    /// Runs `f` on the pool, if there is one, with the pool's other workers kept awake until it
    /// returns (`awake`); else on this thread. One hand-over to the pool per call: the GEMMs and
    /// attention inside then run on its threads directly (an `install` from a worker of the
    /// same pool runs inline), which saves a wake-up per step and keeps rayon's job queue from
    /// allocating per step.
    fn on_pool<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(|| awake::run(pool.current_num_threads() - 1, f)),
            None => f(),
        }
    }

    fn forward_on_pool(
        &self,
        inputs: &Inputs<'_>,
        ws: &mut Workspace,
        out: &mut Outputs,
    ) -> Result<(), InputError> {
        self.gather(inputs, ws)?;
        self.encode(ws, None);
        let cfg = &self.config;
        let run = self.run();
        let (batch, seq, h) = (inputs.batch, inputs.seq, cfg.hidden_size);
        let t = ws.tokens.len();
        let Workspace {
            tokens,
            seqs,
            x,
            gemm,
            firsts,
            pooled,
            head,
            transform,
            pool_acc,
            ..
        } = ws;
        let x = &x[..t * h];
        let scatter = |width: usize, src: &[f32], dst: &mut [f32]| {
            for (r, b) in seqs.iter() {
                for i in r.clone() {
                    let pos = tokens[i].2;
                    dst[(b * seq + pos) * width..][..width]
                        .copy_from_slice(&src[i * width..(i + 1) * width]);
                }
            }
        };
        scatter(h, x, reuse(&mut out.last_hidden_state, &[batch, seq, h]));
        // The first token of each sequence (validated real where it is read), and the pooler.
        let pooled = match &self.pooler {
            Some(p) => {
                let firsts = grow(firsts, batch * h);
                for ((r, _), f) in seqs.iter().zip(firsts.chunks_exact_mut(h)) {
                    match r.is_empty() {
                        true => f.fill(0.0),
                        false => f.copy_from_slice(&x[r.start * h..(r.start + 1) * h]),
                    }
                }
                let y = grow(pooled, batch * h);
                p.run(&run, firsts, h, batch, Epilogue::None, y, h, gemm);
                for v in y.iter_mut() {
                    *v = v.tanh();
                }
                reuse_opt(&mut out.pooler_output, &[batch, h]).copy_from_slice(y);
                Some(&*y)
            }
            None => {
                out.pooler_output = None;
                None
            }
        };
        if cfg.pooling == Pooling::None {
            out.sentence_embedding = None;
        } else {
            let emb = reuse_opt(&mut out.sentence_embedding, &[batch, h]);
            let acc = grow(pool_acc, h);
            for ((r, _), e) in seqs.iter().zip(emb.chunks_exact_mut(h)) {
                if r.is_empty() && cfg.pooling == Pooling::Cls {
                    e.fill(0.0);
                } else {
                    let rows = x[r.start * h..r.end * h].chunks_exact(h);
                    let first = &x[r.start * h..(r.start * h + h).min(r.end * h)];
                    pool_into(cfg.pooling, cfg.normalize, first, rows, acc, e);
                }
            }
        }
        let (mut logits, mut start_end) = (false, false);
        match &self.head {
            FastHead::None => {}
            FastHead::Sequence(c) => {
                // Validation guarantees a pooler with this head.
                if let Some(p) = pooled {
                    let y = reuse_opt(&mut out.logits, &[batch, c.n]);
                    c.run(&run, p, h, batch, Epilogue::None, y, c.n, gemm);
                    logits = true;
                }
            }
            FastHead::Token(c) => {
                let y = grow(head, t * c.n);
                c.run(&run, x, h, t, Epilogue::None, y, c.n, gemm);
                if cfg.head == Head::QuestionAnswering {
                    let start = reuse_opt(&mut out.start_logits, &[batch, seq]);
                    scatter_column(seqs, tokens, seq, y, 2, 0, start);
                    let end = reuse_opt(&mut out.end_logits, &[batch, seq]);
                    scatter_column(seqs, tokens, seq, y, 2, 1, end);
                    start_end = true;
                } else {
                    scatter(c.n, y, reuse_opt(&mut out.logits, &[batch, seq, c.n]));
                    logits = true;
                }
            }
            FastHead::MaskedLm {
                transform: dense,
                norm,
                decoder,
            } => {
                let tr = grow(transform, t * h);
                let epi = self.activation_epilogue();
                dense.run(&run, x, h, t, epi, tr, h, gemm);
                self.activate_rest(tr);
                norm.run(&run, tr, cfg.layer_norm_eps as f32);
                let v = decoder.n;
                let y = grow(head, t * v);
                decoder.run(&run, tr, h, t, Epilogue::None, y, v, gemm);
                scatter(v, y, reuse_opt(&mut out.logits, &[batch, seq, v]));
                logits = true;
            }
        }
        if !logits {
            out.logits = None;
        }
        if !start_end {
            out.start_logits = None;
            out.end_logits = None;
        }
        Ok(())
    }

    /// Runs the encoder on a batch and folds into `ranges` the largest magnitude each input
    /// feature of each encoder linear layer takes over the batch's real tokens: what int8
    /// conversion calibrates its smoothing with (the converter runs this on an f32 file).
    pub fn observe_input_ranges(
        &self,
        inputs: &Inputs<'_>,
        ws: &mut Workspace,
        ranges: &mut InputRanges,
    ) -> Result<(), InputError> {
        let cfg = &self.config;
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        ranges.layers.resize_with(cfg.num_layers, || LayerRanges {
            qkv: vec![0.0; h],
            attn_out: vec![0.0; h],
            up: vec![0.0; h],
            down: vec![0.0; i],
        });
        self.gather(inputs, ws)?;
        self.on_pool(|| self.encode(ws, Some(ranges)));
        Ok(())
    }

    /// Checks the inputs and lays out the batch's real tokens in `ws` (padding-free), with the
    /// per-thread scratch.
    fn gather(&self, inputs: &Inputs<'_>, ws: &mut Workspace) -> Result<(), InputError> {
        validate_inputs(&self.config, inputs)?;
        let cfg = &self.config;
        if ws.gemm.len() < self.threads {
            ws.gemm.resize_with(self.threads, GemmScratch::default);
            ws.heads.resize_with(self.threads, HeadScratch::default);
        }
        let (batch, seq) = (inputs.batch, inputs.seq);
        let needs_first = cfg.has_pooler || cfg.pooling == Pooling::Cls;
        ws.tokens.clear();
        ws.seqs.clear();
        for b in 0..batch {
            let start = ws.tokens.len();
            if needs_first && inputs.mask(b * seq) == 0 {
                return Err(InputError::FirstTokenMasked { batch: b });
            }
            for pos in 0..seq {
                let i = b * seq + pos;
                if inputs.mask(i) == 1 {
                    // In range: `validate_inputs` bounded ids and types by the config.
                    let tt = inputs.token_type(i) as usize;
                    ws.tokens.push((inputs.input_ids[i] as usize, tt, pos));
                }
            }
            ws.seqs.push((start..ws.tokens.len(), b));
        }
        Ok(())
    }

    /// The GEMM epilogue for the model's activation: fused for GELU (erf), none for the others,
    /// which [`Self::activate_rest`] applies in a pass of their own.
    fn activation_epilogue(&self) -> Epilogue<'static> {
        match self.config.hidden_act {
            Activation::Gelu => Epilogue::Gelu,
            _ => Epilogue::None,
        }
    }

    fn activate_rest(&self, x: &mut [f32]) {
        match self.config.hidden_act {
            Activation::Gelu => {}
            act => activate(act, x),
        }
    }

    /// The encoder over `ws.tokens` (grouped by `ws.seqs`): the last hidden state of every
    /// real token into `ws.x`; with `ranges` (sized to the model), each linear layer's input
    /// ranges are folded in too.
    fn encode(&self, ws: &mut Workspace, mut ranges: Option<&mut InputRanges>) {
        let cfg = &self.config;
        let run = self.run();
        let k = self.kernels;
        let (h, inter) = (cfg.hidden_size, cfg.intermediate_size);
        let heads = cfg.num_heads;
        let d = h / heads;
        let eps = cfg.layer_norm_eps as f32;
        let t = ws.tokens.len();

        // Embeddings: word + token type + position, then LayerNorm.
        let x = grow(&mut ws.x, t * h);
        x.fill(0.0);
        for (row, &(id, tt, pos)) in x.chunks_exact_mut(h).zip(&ws.tokens) {
            // transformers: (inputs_embeds + token_type_embeddings) + position_embeddings.
            self.word.add_row(id, row);
            self.token_type.add_row(tt, row);
            self.position.add_row(pos, row);
        }
        self.emb_norm.run(&run, x, eps);

        grow(&mut ws.qkv, t * 3 * h);
        grow(&mut ws.ctx, t * h);
        grow(&mut ws.attn, t * h);
        grow(&mut ws.inter, t * inter);
        let parts = self.threads.min(heads);
        for (l, layer) in self.layers.iter().enumerate() {
            let mut seen = ranges.as_deref_mut().map(|r| &mut r.layers[l]);
            let x = &ws.x[..t * h];
            let g = &mut ws.gemm[..];
            if let Some(r) = seen.as_deref_mut() {
                fold_abs_max(&mut r.qkv, x);
            }
            let qkv = &mut ws.qkv[..t * 3 * h];
            layer.qkv.run(&run, x, t, qkv, g);
            let att = Attention {
                // In bf16 mode, attention's products are bf16 too (the softmax stays f32).
                kernel: if self.attention_is_bf16() {
                    k.attention_bf16
                } else {
                    k.attention
                },
                qkv,
                seqs: &ws.seqs,
                h,
                d,
            };
            let ctx = MatMut::new(&mut ws.ctx[..t * h], t, h, h);
            let scratch = &mut ws.heads[..parts];
            match &self.pool {
                Some(pool) if parts > 1 => pool.install(|| att.heads(0..heads, ctx, scratch)),
                _ => att.heads(0..heads, ctx, scratch),
            }
            if let Some(r) = seen.as_deref_mut() {
                fold_abs_max(&mut r.attn_out, &ws.ctx[..t * h]);
            }
            // attn = LayerNorm(ctx W_o^T + b_o + x)
            let x = &ws.x[..t * h];
            let attn = &mut ws.attn[..t * h];
            let residual = Epilogue::Residual { r: x, ld: h };
            layer
                .attn_out
                .run(&run, &ws.ctx, h, t, residual, attn, h, g);
            layer.attn_norm.run(&run, attn, eps);
            if let Some(r) = seen.as_deref_mut() {
                fold_abs_max(&mut r.up, attn);
            }
            // x = LayerNorm(act(attn W_up^T + b_up) W_down^T + b_down + attn)
            let mid = &mut ws.inter[..t * inter];
            let epi = self.activation_epilogue();
            layer.up.run(&run, attn, h, t, epi, mid, inter, g);
            self.activate_rest(mid);
            if let Some(r) = seen {
                fold_abs_max(&mut r.down, mid);
            }
            let x = &mut ws.x[..t * h];
            let residual = Epilogue::Residual { r: &*attn, ld: h };
            layer.down.run(&run, mid, inter, t, residual, x, h, g);
            layer.out_norm.run(&run, x, eps);
        }
    }
}

/// The physical cores this process can use, the default thread count: on Linux, the distinct
/// (package, core) pairs of the online CPUs (SMT siblings share a core's FMA units, so a second
/// thread per core rarely helps a GEMM), capped by [`std::thread::available_parallelism`]
/// (affinity, cgroup quota); elsewhere, or if the topology cannot be read, that number alone.
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    linux_cores().map_or(logical, |c| c.clamp(1, logical))
}

/// Distinct (package, core) pairs under /sys/devices/system/cpu, or `None` if any read fails.
fn linux_cores() -> Option<usize> {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    let mut cores = std::collections::BTreeSet::new();
    for part in online.trim().split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => (part.parse::<usize>().ok()?, part.parse::<usize>().ok()?),
        };
        // A corrupt range must not turn into a long loop.
        if hi < lo || hi - lo > 1 << 16 {
            return None;
        }
        for cpu in lo..=hi {
            let read = |what: &str| {
                let path = format!("/sys/devices/system/cpu/cpu{cpu}/topology/{what}");
                std::fs::read_to_string(path)
                    .ok()?
                    .trim()
                    .parse::<i64>()
                    .ok()
            };
            cores.insert((read("physical_package_id")?, read("core_id")?));
        }
    }
    Some(cores.len())
}

/// The largest magnitude each input feature of each encoder linear layer took, over the
/// tokens [`FastModel::observe_input_ranges`] has seen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputRanges {
    /// One per encoder layer.
    pub layers: Vec<LayerRanges>,
}

/// One encoder layer's input ranges, per input feature.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRanges {
    /// The input of the query, key and value projections (`hidden` features).
    pub qkv: Vec<f32>,
    /// The attention output projection's input: the heads' context (`hidden`).
    pub attn_out: Vec<f32>,
    /// The FFN up projection's input (`hidden`).
    pub up: Vec<f32>,
    /// The FFN down projection's input: the activation's output (`intermediate`).
    pub down: Vec<f32>,
}

/// `acc[j] = max(acc[j], |x[r][j]|)` over the rows of `x` (row length `acc.len()`).
fn fold_abs_max(acc: &mut [f32], x: &[f32]) {
    for row in x.chunks_exact(acc.len()) {
        for (a, v) in acc.iter_mut().zip(row) {
            *a = a.max(v.abs());
        }
    }
}

/// One layer's self-attention over projected Q, K and V (side by side in `qkv`, `t x 3h`; head
/// `i` in columns `i*d .. (i+1)*d` of each), sequence by sequence.
struct Attention<'a> {
    kernel: fn(AttentionHead<'_>, &mut AttentionScratch),
    qkv: &'a [f32],
    seqs: &'a [(Range<usize>, usize)],
    h: usize,
    d: usize,
}

impl Attention<'_> {
    /// Heads `range` into `ctx` (those heads' columns of the context, all rows), split between
    /// `scratch.len()` threads by halving (stack jobs: nothing allocated). Each head's values are
    /// computed by the same operations whatever the split.
    fn heads(&self, range: Range<usize>, ctx: MatMut<'_>, scratch: &mut [HeadScratch]) {
        if scratch.len() <= 1 || range.len() <= 1 {
            let mut ctx = ctx;
            for head in range.clone() {
                self.head(
                    head,
                    (head - range.start) * self.d,
                    &mut ctx,
                    &mut scratch[0],
                );
            }
            return;
        }
        let half = scratch.len() / 2;
        let mid = range.start + range.len() * half / scratch.len();
        let (left, right) = ctx.split_cols((mid - range.start) * self.d);
        let (ls, rs) = scratch.split_at_mut(half);
        rayon::join(
            || self.heads(range.start..mid, left, ls),
            || self.heads(mid..range.end, right, rs),
        );
    }

    /// One head, every sequence: `softmax(Q K^T / sqrt(d)) V` into columns `col .. col + d` of
    /// `ctx`, by the fused attention kernel (one call per sequence: its tokens are all real).
    fn head(&self, head: usize, col: usize, ctx: &mut MatMut<'_>, s: &mut HeadScratch) {
        let (h, d) = (self.h, self.d);
        let ld = 3 * h;
        let scale = (d as f32).powf(-0.5);
        for (r, _) in self.seqs {
            let n = r.len();
            if n == 0 {
                continue;
            }
            let off = r.start * ld + head * d;
            let (_, rest) = ctx.rows_mut(r.clone()).split_cols(col);
            let (out, _) = rest.split_cols(d);
            (self.kernel)(
                AttentionHead {
                    n,
                    d,
                    q: &self.qkv[off..],
                    ldq: ld,
                    k: &self.qkv[off + h..],
                    ldk: ld,
                    v: &self.qkv[off + 2 * h..],
                    ldv: ld,
                    scale,
                    out,
                },
                &mut s.attention,
            );
        }
    }
}

fn tensor<'f>(file: &'f BerthFile, name: &str) -> Result<TensorView<'f>, FormatError> {
    file.tensor(name).ok_or_else(|| FormatError::MissingTensor {
        name: name.to_owned(),
    })
}

fn f32_tensor<'f>(file: &'f BerthFile, name: &str) -> Result<&'f [f32], FormatError> {
    tensor(file, name)?
        .as_f32()
        .ok_or_else(|| FormatError::DtypeNotAllowed {
            name: name.to_owned(),
            dtype: "non-f32",
        })
}

/// A tensor the validated file should have made readable but did not (a reader bug, reported
/// as an error rather than a panic).
fn unreadable(name: &str) -> FormatError {
    FormatError::LayoutMismatch {
        name: name.to_owned(),
        reason: "cannot be read as a linear layer's weights".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn physical_cores_is_at_least_one_and_at_most_the_logical_cpus() {
        let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cores = super::physical_cores();
        assert!((1..=logical).contains(&cores), "{cores} of {logical}");
    }

    /// A LayerNorm divided between threads gives the bits of one thread, for shapes that
    /// divide in 1 to 7 parts (the engine's test models are too small to divide).
    #[test]
    fn divided_layer_norm_is_bit_identical() {
        use super::{Norm, Run, MIN_NORM_PART};
        let kernels = *berth_kernels::kernels().unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(7)
            .build()
            .unwrap();
        for cols in [384, 768, 100] {
            let gamma: Vec<f32> = (0..cols).map(|i| 1.0 + (i % 7) as f32 * 0.1).collect();
            let beta: Vec<f32> = (0..cols).map(|i| (i % 5) as f32 * 0.01).collect();
            let norm = Norm {
                gamma: &gamma,
                beta: &beta,
            };
            for rows in [1, 41, 128, 301, 700] {
                let x: Vec<f32> = (0..rows * cols)
                    .map(|i| ((i * 7919) % 1013) as f32 * 0.01 - 5.0)
                    .collect();
                let mut one = x.clone();
                let single = Run {
                    kernels: &kernels,
                    pool: None,
                };
                norm.run(&single, &mut one, 1e-12);
                let mut many = x.clone();
                let threaded = Run {
                    kernels: &kernels,
                    pool: Some(&pool),
                };
                norm.run(&threaded, &mut many, 1e-12);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&one), bits(&many), "{rows} x {cols}");
                assert_ne!(one, x, "{rows} x {cols}: not normalised");
            }
            assert!(700 * cols / MIN_NORM_PART > 1, "no shape divides");
        }
    }
}
