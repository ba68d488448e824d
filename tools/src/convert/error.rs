use std::path::PathBuf;

/// Everything that can stop a conversion. Each names the file, field or tensor at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {what} not found", path.display())]
    MissingFile { path: PathBuf, what: &'static str },
    #[error("config.json: `{field}` {reason}")]
    ConfigField { field: String, reason: String },
    #[error("unsupported architecture {found:?} (berth converts BertModel, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, BertForQuestionAnswering)")]
    UnsupportedArchitecture { found: String },
    #[error(
        "unsupported hidden_act {found:?} (berth supports gelu, gelu_new, gelu_pytorch_tanh, relu)"
    )]
    UnsupportedActivation { found: String },
    #[error("unsupported configuration: {reason}")]
    Unsupported { reason: String },
    #[error("{}: not a valid safetensors file: {message}", path.display())]
    Safetensors { path: PathBuf, message: String },
    #[error(
        "tensor `{name}`: unsupported safetensors dtype {dtype} (berth reads F32, F16, BF16, F64)"
    )]
    UnsupportedDtype { name: String, dtype: String },
    #[error("tensor `{name}` is required by config.json but missing from the checkpoint")]
    MissingTensor { name: String },
    #[error("tensor `{name}` is unknown: not part of {architecture}")]
    UnknownTensor { name: String, architecture: String },
    #[error("tensor `{name}` appears twice in the checkpoint (once as `{other}`)")]
    DuplicateTensor { name: String, other: String },
    #[error("tensor `{name}` has shape {found:?}, but config.json implies {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error(
        "tensor `{name}` holds {value} at element {index}: refusing to convert non-finite weights"
    )]
    NonFinite {
        name: String,
        index: usize,
        value: f32,
    },
    /// A finite weight too large for the output dtype (f16 up to 65504, bf16 up to about
    /// 3.39e38, where rounding to nearest can reach infinity).
    #[error("tensor `{name}` overflows {dtype} at element {index} ({value})")]
    Overflow {
        name: String,
        dtype: &'static str,
        index: usize,
        value: f32,
    },
    #[error("config.json ties the decoder to the word embeddings, but `{name}` differs from them")]
    UntiedDecoder { name: String },
    /// Reading a JSON or tokenizer file of the checkpoint.
    #[error(transparent)]
    HfFile(#[from] berth::tokenizer::hf::HfError),
    #[error("{}: {reason}", path.display())]
    SentenceTransformers { path: PathBuf, reason: String },
    #[error(transparent)]
    Berth(#[from] berth::Error),
    #[error(transparent)]
    Format(#[from] berth::FormatError),
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ConvertError {
    let path = path.into();
    move |source| ConvertError::Io { path, source }
}
