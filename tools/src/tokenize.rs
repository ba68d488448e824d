//! `berth tokenize`: one text (or pair) per input line to one JSON object per output line,
//! with `ids`, `type_ids`, `offsets` (UTF-8 byte ranges into the input text; `[0, 0]` for the
//! added special tokens) and `tokens`.

use std::io::{BufRead, Write};

use berth::tokenizer::{EncodeOptions, Encoding, Tokenizer};
use serde_json::Value;

/// How input lines are read.
#[derive(Clone, Copy, Debug, Default)]
pub struct InputFormat {
    /// Two texts per line: separated by a tab, or (with `jsonl`) a JSON array of two strings.
    pub pair: bool,
    /// Each line is a JSON string (or array of two), so any text can be given.
    pub jsonl: bool,
}

/// What can go wrong in `berth tokenize`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizeCliError {
    #[error("line {line}: {reason}")]
    Input { line: usize, reason: String },
    #[error("line {line}: {source}")]
    Tokenize {
        line: usize,
        #[source]
        source: berth::tokenizer::TokenizeError,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub(crate) fn parse_line(
    raw: &[u8],
    format: InputFormat,
    line: usize,
) -> Result<(String, Option<String>), TokenizeCliError> {
    let bad = |reason: String| TokenizeCliError::Input { line, reason };
    let text = std::str::from_utf8(raw)
        .map_err(|e| bad(format!("not valid UTF-8 (byte {})", e.valid_up_to())))?;
    if !format.jsonl {
        return Ok(if format.pair {
            let (a, b) = text
                .split_once('\t')
                .ok_or_else(|| bad("--pair needs two texts separated by a tab".into()))?;
            (a.to_owned(), Some(b.to_owned()))
        } else {
            (text.to_owned(), None)
        });
    }
    let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    match (v, format.pair) {
        (Value::String(s), false) => Ok((s, None)),
        (Value::Array(a), true) => match <[Value; 2]>::try_from(a) {
            Ok([Value::String(x), Value::String(y)]) => Ok((x, Some(y))),
            _ => Err(bad("--pair --jsonl needs an array of two strings".into())),
        },
        (_, false) => Err(bad("--jsonl needs a JSON string per line".into())),
        (_, true) => Err(bad("--pair --jsonl needs an array of two strings".into())),
    }
}

fn write_encoding(out: &mut impl Write, tok: &Tokenizer, enc: &Encoding) -> std::io::Result<()> {
    let tokens: Vec<&str> = enc
        .ids
        .iter()
        .map(|&id| tok.token(id).unwrap_or(""))
        .collect();
    let offsets: Vec<[usize; 2]> = enc.offsets.iter().map(|&(s, e)| [s, e]).collect();
    let v = serde_json::json!({
        "ids": enc.ids,
        "type_ids": enc.type_ids,
        "offsets": offsets,
        "tokens": tokens,
    });
    serde_json::to_writer(&mut *out, &v)?;
    out.write_all(b"\n")
}

/// Tokenizes every line of `input` into `output`. Stops at the first bad line.
pub fn run(
    tok: &Tokenizer,
    opts: &EncodeOptions,
    format: InputFormat,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<usize, TokenizeCliError> {
    let mut enc = Encoding::default();
    let mut n = 0;
    for (i, raw) in input.split(b'\n').enumerate() {
        let raw = raw?;
        let (a, b) = parse_line(&raw, format, i + 1)?;
        let result = match &b {
            Some(b) => tok.encode_pair_into(&a, b, opts, &mut enc),
            None => tok.encode_into(&a, opts, &mut enc),
        };
        result.map_err(|source| TokenizeCliError::Tokenize {
            line: i + 1,
            source,
        })?;
        write_encoding(&mut output, tok, &enc)?;
        n += 1;
    }
    output.flush()?;
    Ok(n)
}
