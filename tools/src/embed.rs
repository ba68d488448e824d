//! `berth embed`: texts (from the arguments, or one per input line) to sentence embeddings, one
//! JSON object per output line: `{"embedding": [...], "truncated": false}`.

use std::io::{BufRead, Write};

use berth::Model;

use crate::tokenize::{parse_line, InputFormat, TokenizeCliError};

/// What can go wrong in `berth embed`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedCliError {
    #[error(transparent)]
    Input(#[from] TokenizeCliError),
    #[error("{0}")]
    Model(#[from] berth::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl EmbedCliError {
    /// Whether this is the reader of the output going away (`| head`), which is not an error.
    pub fn is_broken_pipe(&self) -> bool {
        let io = match self {
            EmbedCliError::Io(e) | EmbedCliError::Input(TokenizeCliError::Io(e)) => e,
            _ => return false,
        };
        io.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// Embeds `texts` in batches of `batch` and writes one JSON line each. Returns the count.
pub fn run_texts(
    model: &Model,
    texts: &[String],
    batch: usize,
    mut output: impl Write,
) -> Result<usize, EmbedCliError> {
    for chunk in texts.chunks(batch.max(1)) {
        write_batch(model, chunk, &mut output)?;
    }
    output.flush()?;
    Ok(texts.len())
}

/// Embeds every line of `input` (as `berth tokenize` reads them: plain, or with `jsonl` a JSON
/// string a line), `batch` lines at a time. Stops at the first bad line.
pub fn run_lines(
    model: &Model,
    jsonl: bool,
    batch: usize,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<usize, EmbedCliError> {
    let format = InputFormat { pair: false, jsonl };
    let mut pending: Vec<String> = Vec::with_capacity(batch.max(1));
    let mut n = 0;
    for (i, raw) in input.split(b'\n').enumerate() {
        let raw = raw.map_err(TokenizeCliError::Io)?;
        let (text, _) = parse_line(&raw, format, i + 1)?;
        pending.push(text);
        if pending.len() >= batch.max(1) {
            n += write_batch(model, &pending, &mut output)?;
            pending.clear();
        }
    }
    n += write_batch(model, &pending, &mut output)?;
    output.flush()?;
    Ok(n)
}

fn write_batch(
    model: &Model,
    texts: &[String],
    output: &mut impl Write,
) -> Result<usize, EmbedCliError> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let emb = model.embed(&refs)?;
    for (i, e) in emb.iter().enumerate() {
        let v = serde_json::json!({ "embedding": e, "truncated": emb.truncated(i) });
        serde_json::to_writer(&mut *output, &v).map_err(std::io::Error::from)?;
        output.write_all(b"\n")?;
    }
    Ok(emb.len())
}
