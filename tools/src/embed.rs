//! `berth embed`: texts (from the arguments, or one per input line) to sentence embeddings, one
//! JSON object per output line (`{"embedding": [...], "truncated": false}`), or one float32
//! `.npy` array of `texts x dim`.

use std::io::{BufRead, Write};
use std::path::Path;

use berth::Model;

use crate::tasks::{for_each_batch, Source, TaskCliError};

/// What can go wrong in `berth embed`.
pub type EmbedCliError = TaskCliError;

/// Embeds the texts (`args`, or else the lines of `input`), `source.batch` at a time. Writes
/// JSON lines to `output`, or with `npy` everything to that file as one `.npy` array. Returns
/// the number of texts.
pub fn run(
    model: &Model,
    args: &[String],
    source: Source,
    input: impl BufRead,
    mut output: impl Write,
    npy: Option<&Path>,
) -> Result<usize, EmbedCliError> {
    let mut all: Vec<f32> = Vec::new();
    let n = for_each_batch(args, source, input, |items| {
        let refs: Vec<&str> = items.iter().map(|i| i.0.as_str()).collect();
        let emb = model.embed(&refs)?;
        if npy.is_some() {
            all.extend_from_slice(emb.as_slice());
            return Ok(());
        }
        for (i, e) in emb.iter().enumerate() {
            let v = serde_json::json!({ "embedding": e, "truncated": emb.truncated(i) });
            serde_json::to_writer(&mut output, &v).map_err(std::io::Error::from)?;
            output.write_all(b"\n")?;
        }
        Ok(())
    })?;
    match npy {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| TaskCliError::Usage(format!("{}: {e}", path.display())))?;
            let mut w = std::io::BufWriter::new(file);
            write_npy(&mut w, &all, n, model.embedding_dim())?;
            w.flush()?;
        }
        None => output.flush()?,
    }
    Ok(n)
}

/// Writes a little-endian float32 `.npy` (format 1.0) of shape `[rows, cols]`.
pub fn write_npy(
    out: &mut impl Write,
    data: &[f32],
    rows: usize,
    cols: usize,
) -> std::io::Result<()> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64,
    // ending in a newline.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    out.write_all(b"\x93NUMPY\x01\x00")?;
    out.write_all(&(header.len() as u16).to_le_bytes())?;
    out.write_all(header.as_bytes())?;
    for v in data {
        out.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}
