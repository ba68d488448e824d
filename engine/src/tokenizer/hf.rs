//! Hugging Face tokenizer files to a [`TokenizerConfig`] (feature `hf`): a BERT
//! `tokenizer.json`, or `vocab.txt` with `tokenizer_config.json`, plus
//! `special_tokens_map.json` and sentence-transformers' `sentence_bert_config.json`. The
//! converter stores the result in the `.berth` file; [`from_dir`] builds a tokenizer straight
//! from a checkpoint directory.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Tokenizer;
use crate::config::{TokenizerConfig, TokenizerKind, Vocab};

/// What can be wrong with a checkpoint's tokenizer files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HfError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{}: no tokenizer.json or vocab.txt", dir.display())]
    NotFound { dir: PathBuf },
    #[error(transparent)]
    Format(#[from] crate::FormatError),
}

/// Reads and parses a JSON file; `Ok(None)` if it does not exist. (The converter reads
/// config.json and the sentence-transformers files with it too.)
pub fn read_json(path: &Path) -> Result<Option<Value>, HfError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| HfError::Json {
                path: path.to_owned(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HfError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// A field that is absent or JSON `null`.
pub fn absent(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

/// A boolean field, with a default when absent; `None` if it is not a boolean.
pub fn bool_field(v: &Value, field: &str, default: bool) -> Option<bool> {
    match v.get(field) {
        None | Some(Value::Null) => Some(default),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => None,
    }
}

/// A string field, if present.
pub fn str_field<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

/// The tokenizer of a checkpoint directory, with the max length sentence-transformers uses
/// when `sentence_bert_config.json` is there (else `tokenizer_config.json`'s
/// `model_max_length`, else `config.json`'s `max_position_embeddings`, default 512).
pub fn from_dir(dir: &Path) -> Result<(Tokenizer, TokenizerConfig), HfError> {
    let max_positions = read_json(&dir.join("config.json"))?
        .and_then(|c| c.get("max_position_embeddings").and_then(Value::as_u64))
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(512);
    let st_max = sentence_transformers_max_length(dir)?;
    let (config, _) =
        read_tokenizer(dir, max_positions, st_max)?.ok_or_else(|| HfError::NotFound {
            dir: dir.to_owned(),
        })?;
    config.validate_for(config.vocab.len(), max_positions)?;
    Ok((Tokenizer::new(&config), config))
}

/// sentence-transformers' `max_seq_length`, if `sentence_bert_config.json` gives one.
pub fn sentence_transformers_max_length(dir: &Path) -> Result<Option<usize>, HfError> {
    Ok(read_json(&dir.join("sentence_bert_config.json"))?
        .and_then(|v| v.get("max_seq_length").and_then(Value::as_u64))
        .and_then(|n| usize::try_from(n).ok()))
}

/// Where the tokenizer came from, and the max length's provenance, for the converter's summary.
#[derive(Clone, Debug)]
pub struct TokenizerSource {
    pub file: &'static str,
    pub max_length_from: String,
    /// Non-special added tokens of tokenizer.json, which the format cannot carry yet.
    pub ignored_added_tokens: usize,
}

fn bad(path: &Path, reason: impl Into<String>) -> HfError {
    HfError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// A special token's text from tokenizer_config.json or special_tokens_map.json, where a value
/// is either a string or `{"content": ...}`.
fn special_text(maps: &[&Value], key: &str) -> Option<String> {
    maps.iter().find_map(|m| match m.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(obj @ Value::Object(_)) => str_field(obj, "content").map(str::to_owned),
        _ => None,
    })
}

/// The settings a BERT tokenizer needs beyond its vocabulary.
struct Settings {
    lowercase: bool,
    strip_accents: Option<bool>,
    handle_chinese_chars: bool,
    clean_text: bool,
    max_input_chars_per_word: usize,
    prefix: String,
    /// unk, cls, sep, pad, mask by text.
    specials: [String; 5],
    /// Tokens matched literally in raw text: a tokenizer.json's special added tokens, or, for
    /// the slow BertTokenizer, its five special tokens.
    literal: Vec<String>,
    /// Added tokens that are not special (not representable yet; reported in a note).
    ignored_added: usize,
}

/// Reads the tokenizer of `dir`, or `Ok(None)` if it has neither tokenizer.json nor vocab.txt.
/// `max_positions` and `st_max_seq_length` decide the max length (docs/FORMAT.md).
pub fn read_tokenizer(
    dir: &Path,
    max_positions: usize,
    st_max_seq_length: Option<usize>,
) -> Result<Option<(TokenizerConfig, TokenizerSource)>, HfError> {
    let tc_path = dir.join("tokenizer_config.json");
    let tok_config = read_json(&tc_path)?.unwrap_or(Value::Null);
    let special_map = read_json(&dir.join("special_tokens_map.json"))?.unwrap_or(Value::Null);
    let json_path = dir.join("tokenizer.json");
    let vocab_path = dir.join("vocab.txt");
    let (vocab, settings, file) = if let Some(tj) = read_json(&json_path)? {
        let (vocab, settings) = from_tokenizer_json(&json_path, &tj, &[&special_map, &tok_config])?;
        (vocab, settings, "tokenizer.json")
    } else if vocab_path.exists() {
        let text = std::fs::read(&vocab_path).map_err(|source| HfError::Io {
            path: vocab_path.clone(),
            source,
        })?;
        let text = String::from_utf8(text).map_err(|_| bad(&vocab_path, "is not UTF-8"))?;
        // transformers' load_vocab: one token per line, the trailing "\n" stripped.
        let mut tokens: Vec<&str> = text.split('\n').collect();
        if tokens.last() == Some(&"") {
            tokens.pop();
        }
        let vocab = Vocab::from_tokens(&tokens).ok_or_else(|| bad(&vocab_path, "is too large"))?;
        (
            vocab,
            from_tokenizer_config(&tc_path, &tok_config, &[&special_map, &tok_config])?,
            "vocab.txt",
        )
    } else {
        return Ok(None);
    };
    let path = if file == "tokenizer.json" {
        &json_path
    } else {
        &vocab_path
    };
    let lookup = |text: &str| -> Result<u32, HfError> {
        vocab
            .iter()
            .position(|t| t == text)
            .map(|i| i as u32)
            .ok_or_else(|| {
                bad(
                    path,
                    format!("special token {text:?} is not in the vocabulary"),
                )
            })
    };
    let [unk, cls, sep, pad, mask] = &settings.specials;
    let (unk_id, cls_id, sep_id, pad_id, mask_id) = (
        lookup(unk)?,
        lookup(cls)?,
        lookup(sep)?,
        lookup(pad)?,
        lookup(mask)?,
    );
    let mut special_ids = Vec::new();
    for text in &settings.literal {
        let id = lookup(text)?;
        if !special_ids.contains(&id) {
            special_ids.push(id);
        }
    }
    special_ids.sort_unstable();

    let model_max = tok_config
        .get("model_max_length")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok());
    let (max_length, from) = match (st_max_seq_length, model_max) {
        (Some(n), _) => (n, "sentence_bert_config.json max_seq_length".to_owned()),
        (None, Some(n)) if n <= max_positions => {
            (n, "tokenizer_config.json model_max_length".to_owned())
        }
        _ => (max_positions, "max_position_embeddings".to_owned()),
    };
    let (max_length, from) = if max_length > max_positions {
        (
            max_positions,
            format!("{from} ({max_length}) capped at max_position_embeddings"),
        )
    } else {
        (max_length, from)
    };
    let config = TokenizerConfig {
        kind: TokenizerKind::WordPiece,
        lowercase: settings.lowercase,
        strip_accents: settings.strip_accents,
        handle_chinese_chars: settings.handle_chinese_chars,
        clean_text: settings.clean_text,
        max_length,
        max_input_chars_per_word: settings.max_input_chars_per_word,
        continuing_subword_prefix: settings.prefix,
        unk_id,
        cls_id,
        sep_id,
        pad_id,
        mask_id,
        vocab,
        special_ids,
    };
    Ok(Some((
        config,
        TokenizerSource {
            file,
            max_length_from: from,
            ignored_added_tokens: settings.ignored_added,
        },
    )))
}

fn default_specials(maps: &[&Value]) -> [String; 5] {
    [
        ("unk_token", "[UNK]"),
        ("cls_token", "[CLS]"),
        ("sep_token", "[SEP]"),
        ("pad_token", "[PAD]"),
        ("mask_token", "[MASK]"),
    ]
    .map(|(key, default)| special_text(maps, key).unwrap_or_else(|| default.to_owned()))
}

/// A BERT tokenizer.json: WordPiece model, BertNormalizer, BertPreTokenizer.
fn from_tokenizer_json(
    path: &Path,
    tj: &Value,
    maps: &[&Value],
) -> Result<(Vocab, Settings), HfError> {
    let model = tj.get("model").ok_or_else(|| bad(path, "has no `model`"))?;
    match str_field(model, "type") {
        Some("WordPiece") => {}
        other => {
            return Err(bad(
                path,
                format!("model type {other:?} is not supported (berth reads WordPiece)"),
            ))
        }
    }
    let map = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(path, "model.vocab is not an object"))?;
    let mut by_id: Vec<Option<&str>> = vec![None; map.len()];
    for (token, id) in map {
        let id = id
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < map.len())
            .ok_or_else(|| {
                bad(
                    path,
                    format!("token {token:?} has id {id}, outside 0..{}", map.len()),
                )
            })?;
        if by_id[id].replace(token).is_some() {
            return Err(bad(path, format!("id {id} is given to two tokens")));
        }
    }
    // Distinct ids, all below len: every slot is filled.
    let vocab = Vocab::from_tokens(by_id.into_iter().flatten())
        .ok_or_else(|| bad(path, "vocabulary is too large"))?;

    let normalizer = tj.get("normalizer").unwrap_or(&Value::Null);
    let (lowercase, strip_accents, handle_chinese_chars, clean_text) =
        match str_field(normalizer, "type") {
            Some("BertNormalizer") => {
                let flag = |k: &str, d: bool| {
                    bool_field(normalizer, k, d)
                        .ok_or_else(|| bad(path, format!("normalizer.{k} is not a boolean")))
                };
                let strip = match normalizer.get("strip_accents") {
                    v if absent(v) => None,
                    Some(Value::Bool(b)) => Some(*b),
                    Some(v) => return Err(bad(path, format!("normalizer.strip_accents is {v}"))),
                    None => None,
                };
                (
                    flag("lowercase", true)?,
                    strip,
                    flag("handle_chinese_chars", true)?,
                    flag("clean_text", true)?,
                )
            }
            other => {
                return Err(bad(
                    path,
                    format!("normalizer {other:?} is not supported (berth reads BertNormalizer)"),
                ))
            }
        };
    match tj.get("pre_tokenizer").and_then(|p| str_field(p, "type")) {
        Some("BertPreTokenizer") => {}
        other => {
            return Err(bad(
                path,
                format!("pre_tokenizer {other:?} is not supported (berth reads BertPreTokenizer)"),
            ))
        }
    }
    let mut specials = default_specials(maps);
    if let Some(unk) = str_field(model, "unk_token") {
        specials[0] = unk.to_owned();
    }
    // cls and sep as the post-processor inserts them.
    if let Some(pp) = tj.get("post_processor") {
        match str_field(pp, "type") {
            Some("BertProcessing") => {
                for (slot, key) in [(1, "cls"), (2, "sep")] {
                    if let Some(t) = pp.get(key).and_then(|v| v.get(0)).and_then(Value::as_str) {
                        specials[slot] = t.to_owned();
                    }
                }
            }
            Some("TemplateProcessing") => {
                let single: Vec<&str> = pp
                    .get("single")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.get("SpecialToken").and_then(|s| str_field(s, "id")))
                    .collect();
                if let [first, .., last] = single.as_slice() {
                    specials[1] = (*first).to_owned();
                    specials[2] = (*last).to_owned();
                }
            }
            _ => {}
        }
    }
    if let Some(pad) = tj.get("padding").and_then(|p| str_field(p, "pad_token")) {
        specials[3] = pad.to_owned();
    }
    let added: Vec<&Value> = tj
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let is_special = |t: &Value| t.get("special").and_then(Value::as_bool) == Some(true);
    let literal = added
        .iter()
        .filter(|t| is_special(t))
        .filter_map(|t| str_field(t, "content").map(str::to_owned))
        .collect();
    let ignored_added = added.iter().filter(|t| !is_special(t)).count();
    let max_input_chars_per_word = model
        .get("max_input_chars_per_word")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(100);
    let prefix = str_field(model, "continuing_subword_prefix")
        .unwrap_or("##")
        .to_owned();
    Ok((
        vocab,
        Settings {
            lowercase,
            strip_accents,
            handle_chinese_chars,
            clean_text,
            max_input_chars_per_word,
            prefix,
            specials,
            literal,
            ignored_added,
        },
    ))
}

/// The slow `BertTokenizer`'s settings from tokenizer_config.json (all optional).
fn from_tokenizer_config(path: &Path, tc: &Value, maps: &[&Value]) -> Result<Settings, HfError> {
    let flag = |k: &str, d: bool| {
        bool_field(tc, k, d).ok_or_else(|| bad(path, format!("{k} is not a boolean")))
    };
    let strip_accents = match tc.get("strip_accents") {
        v if absent(v) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => return Err(bad(path, format!("strip_accents is {v}"))),
        None => None,
    };
    let specials = default_specials(maps);
    Ok(Settings {
        lowercase: flag("do_lower_case", true)?,
        strip_accents,
        handle_chinese_chars: flag("tokenize_chinese_chars", true)?,
        clean_text: true,
        max_input_chars_per_word: 100,
        prefix: "##".into(),
        literal: specials.to_vec(),
        specials,
        ignored_added: 0,
    })
}
