//! berth's error types: one enum for what can be wrong with a `.berth` file, one for what can be
//! wrong with the inputs of a forward pass, and [`Error`] over both plus I/O.

use std::path::PathBuf;

/// Everything that can be wrong with a `.berth` file. `docs/FORMAT.md` says when each arises.
/// Offsets are in bytes from the start of the file unless the field says otherwise.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    #[error("file too short: {len} bytes, a .berth file has at least {min}")]
    TooShort { len: u64, min: u64 },
    #[error("bad magic {found:02x?}: not a .berth file")]
    BadMagic { found: [u8; 8] },
    #[error("unsupported endianness marker {found:#010x} (berth files are little-endian and need a little-endian host)")]
    UnsupportedEndianness { found: u32 },
    #[error("unsupported format version {major}.{minor} (this reader reads {supported_major}.0 to {supported_major}.{supported_minor})")]
    UnsupportedVersion {
        major: u16,
        minor: u16,
        supported_major: u16,
        supported_minor: u16,
    },
    #[error("unsupported checksum algorithm {found}")]
    UnsupportedChecksum { found: u32 },
    #[error("reserved preamble field `{field}` is {value:#x}, must be 0")]
    NonZeroReserved { field: &'static str, value: u64 },
    #[error("header of {len} bytes is over the cap of {cap}")]
    HeaderTooLarge { len: u64, cap: u64 },
    #[error("file truncated: {what} needs bytes up to {needed}, the file has {len}")]
    Truncated {
        what: &'static str,
        needed: u64,
        len: u64,
    },
    #[error("data offset {found} is wrong: the header ends at {header_end}, so data starts at {expected}")]
    BadDataOffset {
        found: u64,
        header_end: u64,
        expected: u64,
    },
    #[error("{extra} bytes after the last tensor block (data section is {data_len} bytes, tensors end at {tensors_end})")]
    TrailingData {
        extra: u64,
        data_len: u64,
        tensors_end: u64,
    },
    #[error("{extra} bytes after the end of the data section")]
    TrailingBytes { extra: u64 },
    #[error("header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    HeaderChecksumMismatch { stored: u32, computed: u32 },
    #[error("data checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    DataChecksumMismatch { stored: u32, computed: u32 },
    #[error("padding byte at offset {offset} is {value:#04x}, must be 0")]
    NonZeroPadding { offset: u64, value: u8 },
    #[error("header ends inside {what} (needs {needed} bytes at header offset {at}, {left} left)")]
    HeaderEof {
        what: &'static str,
        at: u64,
        needed: u64,
        left: u64,
    },
    #[error("{extra} unread bytes at the end of the header")]
    TrailingHeaderBytes { extra: u64 },
    #[error("{what} is {value}, over its cap of {cap}")]
    CapExceeded {
        what: &'static str,
        value: u64,
        cap: u64,
    },
    #[error("{what} ({context}) is not valid UTF-8")]
    BadUtf8 { what: &'static str, context: String },
    #[error("{field} has unknown code {code}{}", context_suffix(.context))]
    InvalidEnum {
        field: &'static str,
        code: u64,
        context: String,
    },
    #[error("invalid model config: {reason}")]
    BadConfig { reason: String },
    #[error("invalid tokenizer: {reason}")]
    BadTokenizer { reason: String },
    #[error("tensor `{name}`: rank {rank} is outside 1..={max}")]
    BadRank { name: String, rank: u64, max: u64 },
    #[error("tensor `{name}`: dimension {axis} is 0")]
    ZeroDim { name: String, axis: usize },
    #[error("tensor `{name}`: shape {dims:?} overflows when its size in bytes is computed")]
    ShapeOverflow { name: String, dims: Vec<u64> },
    #[error("tensor `{name}`: {what} length is {found} bytes, the shape implies {expected}")]
    LengthMismatch {
        name: String,
        what: &'static str,
        found: u64,
        expected: u64,
    },
    #[error("tensor `{name}`: {reason}")]
    QuantMismatch { name: String, reason: String },
    #[error("tensor `{name}`: unsupported quantisation scheme {scheme} version {version}")]
    UnsupportedQuant {
        name: String,
        scheme: u8,
        version: u8,
    },
    #[error("tensor `{name}`: {what} offset {offset} is not a multiple of {align}")]
    Misaligned {
        name: String,
        what: &'static str,
        offset: u64,
        align: u64,
    },
    #[error("tensor `{name}`: {what} at data offset {offset} overlaps the previous block, which ends at {prev_end}")]
    TensorOverlap {
        name: String,
        what: &'static str,
        offset: u64,
        prev_end: u64,
    },
    #[error("tensor `{name}`: {what} at data offset {offset} leaves a hole; the previous block ends at {prev_end}, so it must start at {expected}")]
    TensorHole {
        name: String,
        what: &'static str,
        offset: u64,
        prev_end: u64,
        expected: u64,
    },
    #[error("tensor `{name}`: {what} [{offset}, {offset}+{len}) is past the end of the {data_len}-byte data section")]
    TensorOutOfRange {
        name: String,
        what: &'static str,
        offset: u64,
        len: u64,
        data_len: u64,
    },
    #[error("tensor `{name}` appears twice in the directory")]
    DuplicateTensor { name: String },
    #[error("tensor `{name}` is required by the config but missing")]
    MissingTensor { name: String },
    #[error("tensor `{name}` is not part of a model with this config")]
    UnexpectedTensor { name: String },
    #[error("tensor `{name}`: shape {found:?} contradicts the config, which implies {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<u64>,
    },
    #[error("tensor `{name}`: dtype {dtype} is not allowed for it")]
    DtypeNotAllowed { name: String, dtype: &'static str },
    #[error("tensor `{name}`: scale {index} is {value}, must be finite and > 0")]
    NonFiniteScale {
        name: String,
        index: usize,
        value: f32,
    },
    #[error("tensor `{name}`: layout {reason}")]
    LayoutMismatch { name: String, reason: String },
    #[error("tensor `{name}`: {reason}")]
    BadInputScale { name: String, reason: String },
    #[error("tensor `{name}`: packed weights are inconsistent: {reason}")]
    BadPackedWeights { name: String, reason: String },
    #[error("tensor `{name}`: element {index} is {value}")]
    NonFiniteWeight {
        name: String,
        index: usize,
        value: f32,
    },
}

fn context_suffix(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!(" ({context})")
    }
}

/// Everything that can be wrong with the inputs of a forward pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    #[error("{what} has {found} elements, batch {batch} x sequence {seq} needs {expected}")]
    ShapeMismatch {
        what: &'static str,
        batch: usize,
        seq: usize,
        found: usize,
        expected: usize,
    },
    #[error("input_ids[{batch}][{pos}] = {id} is outside the vocabulary of {vocab_size}")]
    TokenIdOutOfRange {
        batch: usize,
        pos: usize,
        id: i64,
        vocab_size: usize,
    },
    #[error(
        "token_type_ids[{batch}][{pos}] = {id} is outside the type vocabulary of {type_vocab_size}"
    )]
    TypeIdOutOfRange {
        batch: usize,
        pos: usize,
        id: i64,
        type_vocab_size: usize,
    },
    #[error("attention_mask[{batch}][{pos}] = {value}, must be 0 or 1")]
    BadMask {
        batch: usize,
        pos: usize,
        value: i64,
    },
    #[error("a batch of {batch} sequences of length 0: every sequence needs at least one token")]
    EmptySequence { batch: usize },
    #[error("sequence length {seq} exceeds the model's {max} positions")]
    SequenceTooLong { seq: usize, max: usize },
    #[error("sequence {batch}: its first token is masked, and the model reads it (pooler or CLS pooling)")]
    FirstTokenMasked { batch: usize },
}

/// berth's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Input(#[from] InputError),
    /// Text could not be tokenized (a pair where the truncation needs none, and the like).
    #[error(transparent)]
    Tokenize(#[from] crate::tokenizer::TokenizeError),
    /// A task needs the tokenizer, and the file carries none.
    #[error("the model file carries no tokenizer")]
    NoTokenizer,
    /// A task needs a head the model does not have (`classify` on a `BertModel`, ...).
    #[error("{task} needs a {needs}; this model is a {has}")]
    WrongHead {
        task: &'static str,
        needs: &'static str,
        has: &'static str,
    },
    /// `fill_mask` got a text without a `[MASK]` token (or with its masks cut off by the
    /// maximum sequence length).
    #[error("text {text} has no {mask} token to fill")]
    NoMask { text: usize, mask: String },
    /// An option given to the engine is out of its range.
    #[error("invalid option: {reason}")]
    BadOption { reason: String },
    /// `BERTH_ISA` asks for a path this CPU cannot run, or names none.
    #[error(transparent)]
    Isa(#[from] berth_kernels::IsaError),
}

/// `Result` with berth's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
