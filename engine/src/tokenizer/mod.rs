//! BERT's WordPiece tokenizer, identical in output to Hugging Face `tokenizers` for a BERT
//! `tokenizer.json` (BertNormalizer, BertPreTokenizer, WordPiece, BERT post-processing), with
//! offsets as byte ranges into the original text.
//!
//! ```
//! use berth::config::{TokenizerConfig, TokenizerKind, Vocab};
//! use berth::tokenizer::{EncodeOptions, Encoding, Tokenizer};
//!
//! let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "!"];
//! let config = TokenizerConfig {
//!     kind: TokenizerKind::WordPiece,
//!     lowercase: true,
//!     strip_accents: None,
//!     handle_chinese_chars: true,
//!     clean_text: true,
//!     max_length: 16,
//!     max_input_chars_per_word: 100,
//!     continuing_subword_prefix: "##".into(),
//!     unk_id: 1, cls_id: 2, sep_id: 3, pad_id: 0, mask_id: 4,
//!     vocab: Vocab::from_tokens(tokens).unwrap(),
//!     special_ids: vec![0, 1, 2, 3, 4],
//! };
//! let tokenizer = Tokenizer::new(&config);
//! let mut enc = Encoding::default(); // reuse it: after warm-up, encoding allocates nothing
//! tokenizer.encode_into("Hello worlds!", &EncodeOptions::default(), &mut enc)?;
//! assert_eq!(enc.ids, [2, 5, 6, 7, 8, 3]);
//! assert_eq!(enc.offsets, [(0, 0), (0, 5), (6, 11), (11, 12), (12, 13), (0, 0)]);
//! assert_eq!(tokenizer.decode(&enc.ids, true), "hello worlds!");
//! # Ok::<(), berth::tokenizer::TokenizeError>(())
//! ```
//!
//! Every call writes into a caller-owned [`Encoding`] (or [`BatchEncoding`]) whose buffers,
//! scratch space included, are reused: once they have grown to the largest input seen, a call
//! allocates nothing.

mod hash;
#[cfg(feature = "hf")]
pub mod hf;
mod normalize;

use crate::config::TokenizerConfig;
use hash::FxHashMap;
use normalize::{pre_tokenize, NChar, Normalizer, Pending};

/// What can go wrong when encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizeError {
    #[error("input is not valid UTF-8 (first invalid byte at {valid_up_to})")]
    InvalidUtf8 { valid_up_to: usize },
    #[error("text of {len} bytes is over the 4 GiB limit")]
    TextTooLong { len: usize },
    #[error("max length {max_length} leaves no room for the {specials} special tokens")]
    MaxLengthTooSmall { max_length: usize, specials: usize },
    #[error("truncation {strategy}: the sequence to truncate is too short to fit max length {max_length}")]
    SequenceTooShort {
        strategy: &'static str,
        max_length: usize,
    },
    #[error("truncation only_second needs a second sequence")]
    SecondSequenceNotProvided,
}

/// How to shorten inputs that do not fit, as Hugging Face's `TruncationStrategy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Truncation {
    /// Take tokens from the longer sequence first (for pairs; for one sequence, cut it).
    #[default]
    LongestFirst,
    /// Cut only the first sequence.
    OnlyFirst,
    /// Cut only the second sequence.
    OnlySecond,
}

impl Truncation {
    pub fn name(self) -> &'static str {
        match self {
            Truncation::LongestFirst => "longest_first",
            Truncation::OnlyFirst => "only_first",
            Truncation::OnlySecond => "only_second",
        }
    }

    pub fn parse(s: &str) -> Option<Truncation> {
        match s {
            "longest_first" => Some(Truncation::LongestFirst),
            "only_first" => Some(Truncation::OnlyFirst),
            "only_second" => Some(Truncation::OnlySecond),
            _ => None,
        }
    }
}

/// Options of one encoding call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Maximum length in tokens, special tokens included; `None` uses the model's.
    pub max_length: Option<usize>,
    pub truncation: Truncation,
    /// Add `[CLS]` and `[SEP]` (default true).
    pub add_special_tokens: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            max_length: None,
            truncation: Truncation::LongestFirst,
            add_special_tokens: true,
        }
    }
}

/// One token before post-processing: its id and original byte range.
#[derive(Clone, Copy, Debug, Default)]
struct Piece {
    id: u32,
    start: u32,
    end: u32,
    /// A `##` piece: it continues the previous piece's word.
    continues: bool,
}

/// Reusable working space of an encoding call.
#[derive(Clone, Debug, Default)]
struct Scratch {
    chars: Vec<NChar>,
    tmp: Vec<NChar>,
    pending: Vec<Pending>,
    words: Vec<(u32, u32)>,
    norm: String,
    pos: Vec<u32>,
    first: Vec<Piece>,
    second: Vec<Piece>,
}

/// The result of encoding one sequence or one pair. Reuse it across calls.
#[derive(Clone, Debug, Default)]
pub struct Encoding {
    pub ids: Vec<u32>,
    /// 0 for the first sequence (and its `[CLS]`, `[SEP]`), 1 for the second.
    pub type_ids: Vec<u32>,
    /// Byte ranges into the input text (into the sequence the token came from); `(0, 0)` for
    /// added special tokens.
    pub offsets: Vec<(usize, usize)>,
    /// 1 for tokens added by post-processing (`[CLS]`, `[SEP]`), else 0.
    pub special_tokens_mask: Vec<u8>,
    /// Whether each token continues the previous token's word (a `##` piece): the tokens of
    /// one word, as Hugging Face's `word_ids` group them, are a token with `false` and the
    /// `true` ones after it.
    pub continues_word: Vec<bool>,
    /// Whether tokens were cut to fit the max length.
    pub truncated: bool,
    scratch: Scratch,
}

impl Encoding {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A padded batch: `batch x seq` arrays, right-padded with `[PAD]` (attention 0, type 0).
#[derive(Clone, Debug, Default)]
pub struct BatchEncoding {
    pub batch: usize,
    pub seq: usize,
    pub input_ids: Vec<u32>,
    pub attention_mask: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    /// `(0, 0)` at padding.
    pub offsets: Vec<(usize, usize)>,
    /// Real tokens per row.
    pub lengths: Vec<usize>,
    pub truncated: Vec<bool>,
    one: Encoding,
    stage: Staged,
}

/// Rows of a batch back to back, before padding.
#[derive(Clone, Debug, Default)]
struct Staged {
    ids: Vec<u32>,
    type_ids: Vec<u32>,
    offsets: Vec<(usize, usize)>,
}

/// BERT's tokenizer. `Send + Sync`: share one and give each thread its own [`Encoding`].
#[derive(Clone, Debug)]
pub struct Tokenizer {
    normalizer: Normalizer,
    max_length: usize,
    max_input_chars_per_word: usize,
    prefix: String,
    unk_id: u32,
    cls_id: u32,
    sep_id: u32,
    pad_id: u32,
    mask_id: u32,
    vocab: crate::config::Vocab,
    /// Pieces that start a word, by text.
    initial: FxHashMap<Box<str>, u32>,
    /// Pieces that continue a word, by text without the continuing-subword prefix.
    continuation: FxHashMap<Box<str>, u32>,
    max_initial_len: usize,
    max_continuation_len: usize,
    /// Tokens matched literally in raw text, longest first.
    literals: Vec<(Box<str>, u32)>,
    literal_first_byte: [bool; 256],
    /// Which ids are special (skipped by `decode(.., true)`).
    special: Vec<bool>,
}

impl Tokenizer {
    /// Builds the tokenizer a `.berth` file (or a checkpoint, through the converter) describes.
    /// A config that has passed [`TokenizerConfig::validate`] behaves as documented; any other
    /// still builds without panicking (out-of-range special ids are then simply emitted).
    pub fn new(config: &TokenizerConfig) -> Tokenizer {
        let n = config.vocab.len();
        let mut initial = FxHashMap::default();
        let mut continuation = FxHashMap::default();
        let prefix = config.continuing_subword_prefix.as_str();
        // Later ids win over earlier duplicates, as in Hugging Face's vocabulary map.
        for (id, token) in config.vocab.iter().enumerate() {
            initial.insert(Box::<str>::from(token), id as u32);
            if let Some(rest) = token.strip_prefix(prefix).filter(|r| !r.is_empty()) {
                continuation.insert(Box::<str>::from(rest), id as u32);
            }
        }
        let max_initial_len = initial.keys().map(|k| k.len()).max().unwrap_or(0);
        let max_continuation_len = continuation.keys().map(|k| k.len()).max().unwrap_or(0);
        let mut special = vec![false; n];
        let mut literals = Vec::new();
        let mut literal_first_byte = [false; 256];
        for &id in &config.special_ids {
            let token = config.vocab.get(id as usize);
            if let (Some(s), Some(token)) = (special.get_mut(id as usize), token) {
                *s = true;
                // An empty token (possible only in an unvalidated config) cannot be matched.
                if let Some(&first) = token.as_bytes().first() {
                    literal_first_byte[usize::from(first)] = true;
                    literals.push((Box::<str>::from(token), id));
                }
            }
        }
        literals.sort_by_key(|l| std::cmp::Reverse(l.0.len()));
        Tokenizer {
            normalizer: Normalizer {
                clean_text: config.clean_text,
                handle_chinese_chars: config.handle_chinese_chars,
                strip_accents: config.strip_accents.unwrap_or(config.lowercase),
                lowercase: config.lowercase,
            },
            max_length: config.max_length,
            max_input_chars_per_word: config.max_input_chars_per_word,
            prefix: prefix.to_owned(),
            unk_id: config.unk_id,
            cls_id: config.cls_id,
            sep_id: config.sep_id,
            pad_id: config.pad_id,
            mask_id: config.mask_id,
            vocab: config.vocab.clone(),
            initial,
            continuation,
            max_initial_len,
            max_continuation_len,
            literals,
            literal_first_byte,
            special,
        }
    }

    /// The tokenizer of a `.berth` file, if it has one.
    pub fn from_file(file: &crate::format::BerthFile) -> Option<Tokenizer> {
        file.tokenizer().map(Tokenizer::new)
    }

    /// The model's maximum sequence length (the default for [`EncodeOptions::max_length`]).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The text of a token.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.vocab.get(id as usize)
    }

    /// The id of `[PAD]`.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The id of `[CLS]`.
    pub fn cls_id(&self) -> u32 {
        self.cls_id
    }

    /// The id of `[SEP]`.
    pub fn sep_id(&self) -> u32 {
        self.sep_id
    }

    /// The id of `[MASK]`.
    pub fn mask_id(&self) -> u32 {
        self.mask_id
    }

    /// Whether `id` is a special token (`[CLS]`, `[SEP]`, `[PAD]`, `[MASK]`, `[UNK]`, ...).
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// The normalised form of `text` (BertNormalizer only, as Hugging Face's
    /// `normalizer.normalize_str`). Allocates; for inspection and tests, not the hot path.
    pub fn normalize_str(&self, text: &str) -> String {
        let (mut out, mut tmp, mut pending) = (Vec::new(), Vec::new(), Vec::new());
        self.normalizer
            .normalize(text, 0, &mut out, &mut tmp, &mut pending);
        out.iter().map(|n| n.c).collect()
    }

    /// The continuing-subword prefix (`##`).
    pub fn continuing_subword_prefix(&self) -> &str {
        &self.prefix
    }

    /// The id of `[UNK]`.
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// Encodes one text.
    pub fn encode_into(
        &self,
        text: &str,
        opts: &EncodeOptions,
        out: &mut Encoding,
    ) -> Result<(), TokenizeError> {
        self.encode_impl(text, None, opts, out)
    }

    /// Encodes a pair: `[CLS] a [SEP] b [SEP]`, type ids 0 then 1.
    pub fn encode_pair_into(
        &self,
        a: &str,
        b: &str,
        opts: &EncodeOptions,
        out: &mut Encoding,
    ) -> Result<(), TokenizeError> {
        self.encode_impl(a, Some(b), opts, out)
    }

    /// Encodes bytes that should be UTF-8 (an error names the first invalid byte).
    pub fn encode_bytes_into(
        &self,
        bytes: &[u8],
        opts: &EncodeOptions,
        out: &mut Encoding,
    ) -> Result<(), TokenizeError> {
        let text = std::str::from_utf8(bytes).map_err(|e| TokenizeError::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        self.encode_into(text, opts, out)
    }

    /// Encodes one text into a new [`Encoding`] (convenient; reuse one with
    /// [`Tokenizer::encode_into`] in a hot path).
    pub fn encode(&self, text: &str, opts: &EncodeOptions) -> Result<Encoding, TokenizeError> {
        let mut e = Encoding::default();
        self.encode_into(text, opts, &mut e)?;
        Ok(e)
    }

    fn encode_impl(
        &self,
        a: &str,
        b: Option<&str>,
        opts: &EncodeOptions,
        out: &mut Encoding,
    ) -> Result<(), TokenizeError> {
        for t in std::iter::once(a).chain(b) {
            if u32::try_from(t.len()).is_err() {
                return Err(TokenizeError::TextTooLong { len: t.len() });
            }
        }
        let s = &mut out.scratch;
        let mut first = std::mem::take(&mut s.first);
        self.tokenize(a, s, &mut first);
        let mut second = std::mem::take(&mut s.second);
        second.clear();
        if let Some(b) = b {
            self.tokenize(b, s, &mut second);
        }
        let result = self.post_process(&first, b.map(|_| second.as_slice()), opts, out);
        out.scratch.first = first;
        out.scratch.second = second;
        result
    }

    /// Text to pieces: literal special tokens first, then each stretch between them
    /// normalised, pre-tokenised and split into word pieces.
    fn tokenize(&self, text: &str, s: &mut Scratch, out: &mut Vec<Piece>) {
        out.clear();
        let bytes = text.as_bytes();
        let mut segment_start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if self.literal_first_byte[bytes[i] as usize] {
                // Leftmost-longest, as Hugging Face's added-vocabulary matcher.
                if let Some((tok, id)) = self
                    .literals
                    .iter()
                    .find(|(tok, _)| bytes[i..].starts_with(tok.as_bytes()))
                {
                    self.tokenize_segment(&text[segment_start..i], segment_start as u32, s, out);
                    let end = i + tok.len();
                    out.push(Piece {
                        id: *id,
                        start: i as u32,
                        end: end as u32,
                        continues: false,
                    });
                    i = end;
                    segment_start = end;
                    continue;
                }
            }
            i += 1;
        }
        self.tokenize_segment(&text[segment_start..], segment_start as u32, s, out);
    }

    fn tokenize_segment(&self, text: &str, base: u32, s: &mut Scratch, out: &mut Vec<Piece>) {
        if text.is_empty() {
            return;
        }
        self.normalizer
            .normalize(text, base, &mut s.chars, &mut s.tmp, &mut s.pending);
        pre_tokenize(&s.chars, &mut s.words);
        s.norm.clear();
        s.pos.clear();
        for n in &s.chars {
            s.pos.push(s.norm.len() as u32);
            s.norm.push(n.c);
        }
        s.pos.push(s.norm.len() as u32);
        for &(a, b) in &s.words {
            self.word_pieces(&s.chars, a as usize, b as usize, &s.norm, &s.pos, out);
        }
    }

    /// Greedy longest-match-first WordPiece over the characters `[a, b)` of the normalised
    /// text; a word that is too long, or that has a piece not in the vocabulary, is one
    /// `[UNK]` spanning the word.
    fn word_pieces(
        &self,
        chars: &[NChar],
        a: usize,
        b: usize,
        norm: &str,
        pos: &[u32],
        out: &mut Vec<Piece>,
    ) {
        let unk = Piece {
            id: self.unk_id,
            start: chars[a].start,
            end: chars[b - 1].end,
            continues: false,
        };
        if b - a > self.max_input_chars_per_word {
            out.push(unk);
            return;
        }
        let mark = out.len();
        let mut s = a;
        while s < b {
            let (map, max_len) = if s == a {
                (&self.initial, self.max_initial_len)
            } else {
                (&self.continuation, self.max_continuation_len)
            };
            let from = pos[s] as usize;
            let mut e = b;
            while e > s && pos[e] as usize - from > max_len {
                e -= 1;
            }
            let mut found = None;
            while e > s {
                if let Some(&id) = map.get(&norm[from..pos[e] as usize]) {
                    found = Some(id);
                    break;
                }
                e -= 1;
            }
            let Some(id) = found else {
                out.truncate(mark);
                out.push(unk);
                return;
            };
            out.push(Piece {
                id,
                start: chars[s].start,
                end: chars[e - 1].end,
                continues: s != a,
            });
            s = e;
        }
    }

    /// Truncation, then `[CLS]`/`[SEP]` and type ids, into `out`.
    fn post_process(
        &self,
        first: &[Piece],
        second: Option<&[Piece]>,
        opts: &EncodeOptions,
        out: &mut Encoding,
    ) -> Result<(), TokenizeError> {
        let added = match (opts.add_special_tokens, second.is_some()) {
            (false, _) => 0,
            (true, false) => 2,
            (true, true) => 3,
        };
        let max_length = opts.max_length.unwrap_or(self.max_length);
        let budget = max_length
            .checked_sub(added)
            .ok_or(TokenizeError::MaxLengthTooSmall {
                max_length,
                specials: added,
            })?;
        let (n1, n2) = truncated_lengths(
            first.len(),
            second.map(<[Piece]>::len),
            budget,
            opts.truncation,
        )
        .map_err(|e| match e {
            TruncationFailure::TooShort => TokenizeError::SequenceTooShort {
                strategy: opts.truncation.name(),
                max_length,
            },
            TruncationFailure::NoSecond => TokenizeError::SecondSequenceNotProvided,
        })?;
        out.truncated = n1 < first.len() || second.is_some_and(|s| n2 < s.len());
        out.ids.clear();
        out.type_ids.clear();
        out.offsets.clear();
        out.special_tokens_mask.clear();
        out.continues_word.clear();
        let special = Piece {
            id: self.sep_id,
            start: 0,
            end: 0,
            continues: false,
        };
        let mut push = |p: &Piece, type_id: u32, is_special: u8| {
            out.ids.push(p.id);
            out.type_ids.push(type_id);
            out.offsets.push((p.start as usize, p.end as usize));
            out.special_tokens_mask.push(is_special);
            out.continues_word.push(p.continues);
        };
        if opts.add_special_tokens {
            let cls = Piece {
                id: self.cls_id,
                ..special
            };
            push(&cls, 0, 1);
        }
        for p in &first[..n1] {
            push(p, 0, 0);
        }
        if opts.add_special_tokens {
            push(&special, 0, 1);
        }
        if let Some(second) = second {
            for p in &second[..n2] {
                push(p, 1, 0);
            }
            if opts.add_special_tokens {
                push(&special, 1, 1);
            }
        }
        Ok(())
    }

    /// Encodes a batch and pads it to its longest row.
    pub fn encode_batch_into(
        &self,
        texts: &[&str],
        opts: &EncodeOptions,
        out: &mut BatchEncoding,
    ) -> Result<(), TokenizeError> {
        out.batch = texts.len();
        out.lengths.clear();
        out.truncated.clear();
        // Rows are staged back to back in the (reused) arrays of `one`'s siblings, then laid
        // out padded once the width is known: each text is encoded once.
        let stage = &mut out.stage;
        stage.ids.clear();
        stage.type_ids.clear();
        stage.offsets.clear();
        for t in texts {
            self.encode_into(t, opts, &mut out.one)?;
            out.lengths.push(out.one.len());
            out.truncated.push(out.one.truncated);
            stage.ids.extend_from_slice(&out.one.ids);
            stage.type_ids.extend_from_slice(&out.one.type_ids);
            stage.offsets.extend_from_slice(&out.one.offsets);
        }
        out.seq = out.lengths.iter().copied().max().unwrap_or(0);
        let cells = out.batch * out.seq;
        out.input_ids.clear();
        out.input_ids.resize(cells, self.pad_id);
        out.attention_mask.clear();
        out.attention_mask.resize(cells, 0);
        out.token_type_ids.clear();
        out.token_type_ids.resize(cells, 0);
        out.offsets.clear();
        out.offsets.resize(cells, (0, 0));
        let mut from = 0;
        for (row, &len) in out.lengths.iter().enumerate() {
            let to = row * out.seq..row * out.seq + len;
            let src = from..from + len;
            out.input_ids[to.clone()].copy_from_slice(&stage.ids[src.clone()]);
            out.token_type_ids[to.clone()].copy_from_slice(&stage.type_ids[src.clone()]);
            out.offsets[to.clone()].copy_from_slice(&stage.offsets[src]);
            out.attention_mask[to].fill(1);
            from += len;
        }
        Ok(())
    }

    /// Ids back to text, as Hugging Face's WordPiece decoder does: continuation pieces lose
    /// their prefix and join the previous piece, other pieces are separated by a space, and
    /// spaces before `.` `?` `!` `,` (and a few English contractions) are removed. Unknown ids
    /// are skipped; with `skip_special_tokens`, so are special tokens.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        let tokens = ids.iter().filter_map(|&id| {
            let special = self.special.get(id as usize).copied().unwrap_or(false);
            self.token(id).filter(|_| !(skip_special_tokens && special))
        });
        self.join_tokens(tokens)
    }

    /// Token strings back to text as [`Tokenizer::decode`] joins them (Hugging Face's
    /// `convert_tokens_to_string`).
    pub fn join_tokens<'t>(&self, tokens: impl IntoIterator<Item = &'t str>) -> String {
        let mut out = String::new();
        for (i, token) in tokens.into_iter().enumerate() {
            let piece = if i == 0 {
                token.to_owned()
            } else if let Some(rest) = token.strip_prefix(self.prefix.as_str()) {
                rest.to_owned()
            } else {
                format!(" {token}")
            };
            out.push_str(&cleanup(&piece));
        }
        out
    }
}

/// transformers' `clean_up_tokenization` replacements; Hugging Face's WordPiece decoder makes
/// the same ones, and also turns " do not" into " don't".
const CLEAN_UP: [(&str, &str); 10] = [
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
];

/// transformers' `clean_up_tokenization`, which `tokenizer.decode` applies to the whole
/// decoded string when the tokenizer sets `clean_up_tokenization_spaces` (BERT's do): spaces
/// before punctuation and English contractions removed.
pub fn clean_up_tokenization(text: &str) -> String {
    let mut out = text.to_owned();
    for (from, to) in CLEAN_UP {
        out = out.replace(from, to);
    }
    out
}

/// Hugging Face's WordPiece decoder cleanup, applied to each piece (the replacements run in the
/// decoder's order; " do not" touches none of the others' patterns).
fn cleanup(piece: &str) -> String {
    clean_up_tokenization(piece).replace(" do not", " don't")
}

enum TruncationFailure {
    TooShort,
    NoSecond,
}

/// How many tokens of each sequence survive, as Hugging Face's `truncate_encodings` decides
/// (`budget` is the max length minus the special tokens).
fn truncated_lengths(
    n1: usize,
    n2: Option<usize>,
    budget: usize,
    strategy: Truncation,
) -> Result<(usize, usize), TruncationFailure> {
    let m2 = n2.unwrap_or(0);
    if budget == 0 {
        return Ok((0, 0));
    }
    let total = n1 + m2;
    if total <= budget {
        return Ok((n1, m2));
    }
    let to_remove = total - budget;
    match (strategy, n2) {
        (Truncation::LongestFirst, None) => Ok((budget, 0)),
        (Truncation::LongestFirst, Some(n2)) => {
            // With s <= l the shorter and longer: keep s whole if the longer can take the cut,
            // else split the budget, the odd token going to the longer.
            let (short, long) = (n1.min(n2), n1.max(n2));
            let mut s = short;
            let mut l = if short > budget {
                short
            } else {
                long.min(budget - short).max(short)
            };
            if s + l > budget {
                s = budget / 2;
                l = s + budget % 2;
            }
            Ok(if n1 > n2 { (l, s) } else { (s, l) })
        }
        (Truncation::OnlyFirst, _) => {
            if n1 > to_remove {
                Ok((n1 - to_remove, m2))
            } else {
                Err(TruncationFailure::TooShort)
            }
        }
        (Truncation::OnlySecond, None) => Err(TruncationFailure::NoSecond),
        (Truncation::OnlySecond, Some(n2)) => {
            if n2 > to_remove {
                Ok((n1, n2 - to_remove))
            } else {
                Err(TruncationFailure::TooShort)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hugging Face's own truncation table (max length 7; lengths 0, 2, 4, 8).
    #[test]
    fn longest_first_matches_hugging_face_table() {
        let cases = [
            (0, 0, 0, 0),
            (0, 2, 0, 2),
            (0, 4, 0, 4),
            (0, 8, 0, 7),
            (2, 0, 2, 0),
            (2, 2, 2, 2),
            (2, 4, 2, 4),
            (2, 8, 2, 5),
            (4, 0, 4, 0),
            (4, 2, 4, 2),
            (4, 4, 3, 4),
            (4, 8, 3, 4),
            (8, 0, 7, 0),
            (8, 2, 5, 2),
            (8, 4, 4, 3),
            (8, 8, 3, 4),
        ];
        for (n1, n2, w1, w2) in cases {
            let got = truncated_lengths(n1, Some(n2), 7, Truncation::LongestFirst)
                .ok()
                .unwrap();
            assert_eq!(got, (w1, w2), "{n1} {n2}");
        }
    }

    /// A config that never went through validation (an empty special token, ids out of range)
    /// still builds and encodes without panicking.
    #[test]
    fn unvalidated_config_does_not_panic() {
        let config = TokenizerConfig {
            kind: crate::config::TokenizerKind::WordPiece,
            lowercase: true,
            strip_accents: None,
            handle_chinese_chars: true,
            clean_text: true,
            max_length: 8,
            max_input_chars_per_word: 100,
            continuing_subword_prefix: String::new(),
            unk_id: 9,
            cls_id: 9,
            sep_id: 9,
            pad_id: 9,
            mask_id: 9,
            vocab: crate::config::Vocab::from_tokens(["", "a"]).unwrap(),
            special_ids: vec![0, 1, 7],
        };
        let tok = Tokenizer::new(&config);
        let enc = tok.encode("a b a", &EncodeOptions::default()).unwrap();
        assert_eq!(enc.ids, [9, 1, 9, 1, 9]);
        assert_eq!(tok.decode(&enc.ids, true), "");
    }

    #[test]
    fn only_first_and_only_second() {
        assert!(matches!(
            truncated_lengths(5, Some(3), 6, Truncation::OnlyFirst),
            Ok((3, 3))
        ));
        assert!(matches!(
            truncated_lengths(2, Some(9), 6, Truncation::OnlyFirst),
            Err(TruncationFailure::TooShort)
        ));
        assert!(matches!(
            truncated_lengths(2, Some(9), 6, Truncation::OnlySecond),
            Ok((2, 4))
        ));
        assert!(matches!(
            truncated_lengths(9, None, 6, Truncation::OnlySecond),
            Err(TruncationFailure::NoSecond)
        ));
    }
}
