//! The model and tokenizer configuration a `.berth` file carries (validated), mirroring the
//! fields of Hugging Face's `BertConfig`, sentence-transformers' pooling modules and a BERT
//! `tokenizer.json` that berth needs.

use crate::error::FormatError;

/// The model family. Version 1 of the format knows one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Bert,
}

/// The task head on top of the encoder, as in the `architectures` of `config.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// `BertModel`: hidden states (and the pooler output, if it has a pooler).
    None,
    /// `BertForMaskedLM`: vocabulary logits per token.
    MaskedLm,
    /// `BertForSequenceClassification`: label logits per sequence, from the pooler output.
    SequenceClassification,
    /// `BertForTokenClassification`: label logits per token.
    TokenClassification,
    /// `BertForQuestionAnswering`: start and end logits per token.
    QuestionAnswering,
}

impl Head {
    /// The Hugging Face class name.
    pub fn architecture(self) -> &'static str {
        match self {
            Head::None => "BertModel",
            Head::MaskedLm => "BertForMaskedLM",
            Head::SequenceClassification => "BertForSequenceClassification",
            Head::TokenClassification => "BertForTokenClassification",
            Head::QuestionAnswering => "BertForQuestionAnswering",
        }
    }
}

/// `hidden_act`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: `x * Φ(x)` with the exact (erf) normal CDF.
    Gelu,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation of GELU.
    GeluTanh,
    /// `relu`.
    Relu,
}

impl Activation {
    /// The name `config.json` uses.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_pytorch_tanh",
            Activation::Relu => "relu",
        }
    }
}

/// Sentence-embedding pooling, as sentence-transformers' `Pooling` module configures it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// No sentence embedding.
    None,
    /// Mean of the token states under the attention mask (`pooling_mode_mean_tokens`).
    Mean,
    /// The state of the first token (`pooling_mode_cls_token`).
    Cls,
    /// Element-wise maximum under the mask (`pooling_mode_max_tokens`).
    Max,
    /// Sum under the mask divided by sqrt(token count) (`pooling_mode_mean_sqrt_len_tokens`).
    MeanSqrtLen,
}

impl Pooling {
    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::None => "none",
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
            Pooling::MeanSqrtLen => "mean_sqrt_len",
        }
    }
}

/// `problem_type` of a sequence-classification model: how its logits become scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemType {
    Unspecified,
    SingleLabel,
    MultiLabel,
    Regression,
}

impl ProblemType {
    /// The name `config.json` uses (`unspecified` when absent).
    pub fn name(self) -> &'static str {
        match self {
            ProblemType::Unspecified => "unspecified",
            ProblemType::SingleLabel => "single_label_classification",
            ProblemType::MultiLabel => "multi_label_classification",
            ProblemType::Regression => "regression",
        }
    }
}

/// Gives an enum its code in the `.berth` header (docs/FORMAT.md), both directions from one
/// table, so that the reader and the writer cannot disagree.
macro_rules! codes {
    ($ty:ident { $($variant:ident = $code:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in code order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The code stored in a `.berth` file.
            pub fn code(self) -> u8 {
                match self {
                    $($ty::$variant => $code),+
                }
            }

            /// The value a stored code stands for, if any.
            pub fn from_code(code: u8) -> Option<$ty> {
                match code {
                    $($code => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

codes!(Family { Bert = 1 });
codes!(Head {
    None = 0,
    MaskedLm = 1,
    SequenceClassification = 2,
    TokenClassification = 3,
    QuestionAnswering = 4,
});
codes!(Activation {
    Gelu = 1,
    GeluTanh = 2,
    Relu = 3,
});
codes!(Pooling {
    None = 0,
    Mean = 1,
    Cls = 2,
    Max = 3,
    MeanSqrtLen = 4,
});
codes!(ProblemType {
    Unspecified = 0,
    SingleLabel = 1,
    MultiLabel = 2,
    Regression = 3,
});

/// Caps on the config's sizes (docs/FORMAT.md, "Config block"). They bound every size computed
/// from the config, so that the schema's products cannot overflow.
pub mod caps {
    pub const VOCAB_SIZE: u64 = 1 << 22;
    pub const HIDDEN_SIZE: u64 = 1 << 16;
    pub const NUM_LAYERS: u64 = 1024;
    pub const INTERMEDIATE_SIZE: u64 = 1 << 20;
    pub const MAX_POSITIONS: u64 = 1 << 20;
    pub const TYPE_VOCAB_SIZE: u64 = 1 << 16;
    pub const NUM_LABELS: u64 = 1 << 16;
    pub const LABEL_LEN: u64 = 1024;
    pub const TOKEN_LEN: u64 = 1024;
    pub const SUBWORD_PREFIX_LEN: u64 = 64;
    pub const MAX_INPUT_CHARS_PER_WORD: u64 = 1 << 20;
}

/// The model's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub family: Family,
    pub head: Head,
    pub hidden_act: Activation,
    pub has_pooler: bool,
    pub pooling: Pooling,
    pub normalize: bool,
    pub problem_type: ProblemType,
    /// Masked LM only: the decoder reuses `embeddings.word_embeddings.weight`.
    pub tied_decoder: bool,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    /// `id2label` in id order (empty for heads without labels).
    pub labels: Vec<String>,
}

impl ModelConfig {
    /// The width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Checks the rules between fields (docs/FORMAT.md); the reader calls it after decoding and
    /// the writer before encoding.
    pub fn validate(&self) -> Result<(), FormatError> {
        let bad = |reason: String| Err(FormatError::BadConfig { reason });
        let sizes: [(&str, usize, u64); 7] = [
            ("vocab_size", self.vocab_size, caps::VOCAB_SIZE),
            ("hidden_size", self.hidden_size, caps::HIDDEN_SIZE),
            ("num_layers", self.num_layers, caps::NUM_LAYERS),
            ("num_heads", self.num_heads, caps::HIDDEN_SIZE),
            (
                "intermediate_size",
                self.intermediate_size,
                caps::INTERMEDIATE_SIZE,
            ),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                caps::MAX_POSITIONS,
            ),
            (
                "type_vocab_size",
                self.type_vocab_size,
                caps::TYPE_VOCAB_SIZE,
            ),
        ];
        for (name, value, cap) in sizes {
            if value == 0 || value as u64 > cap {
                return bad(format!("{name} = {value} is outside 1..={cap}"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return bad(format!(
                "hidden_size {} is not a multiple of num_heads {}",
                self.hidden_size, self.num_heads
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return bad(format!(
                "layer_norm_eps = {} must be finite and > 0",
                self.layer_norm_eps
            ));
        }
        if self.labels.len() as u64 > caps::NUM_LABELS {
            return bad(format!("{} labels is over the cap", self.labels.len()));
        }
        if let Some(l) = self
            .labels
            .iter()
            .find(|l| l.len() as u64 > caps::LABEL_LEN)
        {
            return bad(format!(
                "label of {} bytes is over the cap of {}",
                l.len(),
                caps::LABEL_LEN
            ));
        }
        let wants_labels = matches!(
            self.head,
            Head::SequenceClassification | Head::TokenClassification
        );
        if wants_labels && self.labels.is_empty() {
            return bad(format!(
                "{} needs at least one label",
                self.head.architecture()
            ));
        }
        if !wants_labels && !self.labels.is_empty() {
            return bad(format!("{} takes no labels", self.head.architecture()));
        }
        if self.tied_decoder && self.head != Head::MaskedLm {
            return bad("tied_decoder is set but the head is not masked LM".into());
        }
        if self.head == Head::SequenceClassification && !self.has_pooler {
            return bad("sequence classification needs the pooler".into());
        }
        if self.problem_type != ProblemType::Unspecified
            && self.head != Head::SequenceClassification
        {
            return bad("problem_type is only meaningful for sequence classification".into());
        }
        Ok(())
    }
}

/// The tokenizer algorithm. Version 1 of the format knows BERT's WordPiece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    WordPiece,
}

codes!(TokenizerKind { WordPiece = 1 });

/// A vocabulary: token strings by id, stored as one string and end offsets (two allocations,
/// however large the vocabulary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vocab {
    text: String,
    ends: Vec<u32>,
}

impl Vocab {
    /// Builds a vocabulary from tokens in id order. Returns `None` if the tokens together exceed
    /// 4 GiB.
    pub fn from_tokens<S: AsRef<str>>(tokens: impl IntoIterator<Item = S>) -> Option<Vocab> {
        let mut v = Vocab::default();
        for t in tokens {
            v.push(t.as_ref())?;
        }
        Some(v)
    }

    /// Appends a token. Returns `None` if the total text would exceed 4 GiB.
    pub fn push(&mut self, token: &str) -> Option<()> {
        let end = u32::try_from(self.text.len().checked_add(token.len())?).ok()?;
        self.text.push_str(token);
        self.ends.push(end);
        Some(())
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The token with this id.
    pub fn get(&self, id: usize) -> Option<&str> {
        let end = *self.ends.get(id)? as usize;
        let start = if id == 0 {
            0
        } else {
            self.ends[id - 1] as usize
        };
        self.text.get(start..end)
    }

    /// Tokens in id order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// The tokenizer's configuration and vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizerConfig {
    pub kind: TokenizerKind,
    pub lowercase: bool,
    /// `None` follows `lowercase`, as Hugging Face's `strip_accents: null` does.
    pub strip_accents: Option<bool>,
    pub handle_chinese_chars: bool,
    pub clean_text: bool,
    /// The maximum sequence length the model is used at, special tokens included.
    pub max_length: usize,
    pub max_input_chars_per_word: usize,
    pub continuing_subword_prefix: String,
    pub unk_id: u32,
    pub cls_id: u32,
    pub sep_id: u32,
    pub pad_id: u32,
    pub mask_id: u32,
    pub vocab: Vocab,
    /// Tokens matched literally in raw text (`[CLS]`, `[MASK]`, ...).
    pub special_ids: Vec<u32>,
}

impl TokenizerConfig {
    /// Checks the tokenizer against itself and the model config.
    pub fn validate(&self, model: &ModelConfig) -> Result<(), FormatError> {
        self.validate_for(model.vocab_size, model.max_position_embeddings)
    }

    /// Checks the tokenizer against itself and a model with this vocabulary size and number
    /// of positions.
    pub fn validate_for(&self, vocab_size: usize, max_positions: usize) -> Result<(), FormatError> {
        let bad = |reason: String| Err(FormatError::BadTokenizer { reason });
        let n = self.vocab.len();
        if n == 0 || n > vocab_size {
            return bad(format!(
                "vocabulary of {n} tokens; the model's vocab_size is {vocab_size}"
            ));
        }
        if self.max_length == 0 || self.max_length > max_positions {
            return bad(format!(
                "max_length {} is outside 1..={max_positions} (max_position_embeddings)",
                self.max_length
            ));
        }
        if self.max_input_chars_per_word == 0
            || self.max_input_chars_per_word as u64 > caps::MAX_INPUT_CHARS_PER_WORD
        {
            return bad(format!(
                "max_input_chars_per_word {} is outside 1..={}",
                self.max_input_chars_per_word,
                caps::MAX_INPUT_CHARS_PER_WORD
            ));
        }
        if self.continuing_subword_prefix.len() as u64 > caps::SUBWORD_PREFIX_LEN {
            return bad("continuing_subword_prefix is over its cap".into());
        }
        let specials = [
            ("unk_id", self.unk_id),
            ("cls_id", self.cls_id),
            ("sep_id", self.sep_id),
            ("pad_id", self.pad_id),
            ("mask_id", self.mask_id),
        ];
        for (name, id) in specials {
            if id as usize >= n {
                return bad(format!("{name} {id} is outside the vocabulary of {n}"));
            }
        }
        if self.special_ids.len() > n {
            return bad(format!(
                "{} special tokens for a vocabulary of {n}",
                self.special_ids.len()
            ));
        }
        let mut seen = vec![false; n];
        for &id in &self.special_ids {
            match seen.get_mut(id as usize) {
                None => {
                    return bad(format!(
                        "special token id {id} is outside the vocabulary of {n}"
                    ))
                }
                Some(true) => return bad(format!("special token id {id} is listed twice")),
                Some(s) => *s = true,
            }
        }
        for (id, token) in self.vocab.iter().enumerate() {
            if token.is_empty() || token.len() as u64 > caps::TOKEN_LEN {
                return bad(format!(
                    "token {id} has {} bytes, must be 1..={}",
                    token.len(),
                    caps::TOKEN_LEN
                ));
            }
        }
        Ok(())
    }
}
