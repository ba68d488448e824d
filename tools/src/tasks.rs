//! `berth classify`, `ner`, `qa`, `fill-mask` and `rerank`: inputs from the arguments or
//! stdin, results as readable lines or, with `--json`, one JSON value per input line under the
//! field names of transformers' pipelines (`start`/`end` in bytes).

use std::io::{BufRead, Write};

use berth::{Aggregation, Answer, Classification, Entity, Fill, Model, QaOptions, Ranked, ScoreFn};
use serde_json::{json, Value};

use crate::tokenize::{parse_line, InputFormat, TokenizeCliError};

/// What can go wrong in a task command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskCliError {
    #[error(transparent)]
    Input(#[from] TokenizeCliError),
    #[error("{0}")]
    Model(#[from] berth::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Usage(String),
}

impl TaskCliError {
    /// Whether this is the reader of the output going away (`| head`), which is not an error.
    pub fn is_broken_pipe(&self) -> bool {
        let io = match self {
            TaskCliError::Io(e) | TaskCliError::Input(TokenizeCliError::Io(e)) => e,
            _ => return false,
        };
        io.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// One input: a text, or a pair.
pub type Item = (String, Option<String>);

/// Where inputs come from: the arguments (taken two at a time with `pair`), else stdin one a
/// line (tab-separated pairs, or with `jsonl` a JSON string or array of two a line).
#[derive(Clone, Copy, Debug)]
pub struct Source {
    pub pair: bool,
    pub jsonl: bool,
    /// Inputs per model call.
    pub batch: usize,
}

/// Calls `f` on the inputs, `source.batch` at a time, in order; returns how many there were.
pub fn for_each_batch(
    args: &[String],
    source: Source,
    input: impl BufRead,
    mut f: impl FnMut(&[Item]) -> Result<(), TaskCliError>,
) -> Result<usize, TaskCliError> {
    let batch = source.batch.max(1);
    if !args.is_empty() {
        let items: Vec<Item> = match source.pair {
            true if args.len() % 2 == 1 => {
                return Err(TaskCliError::Usage(format!(
                    "--pair takes texts two at a time; {} were given",
                    args.len()
                )))
            }
            true => args
                .chunks_exact(2)
                .map(|p| (p[0].clone(), Some(p[1].clone())))
                .collect(),
            false => args.iter().map(|a| (a.clone(), None)).collect(),
        };
        for chunk in items.chunks(batch) {
            f(chunk)?;
        }
        return Ok(items.len());
    }
    let format = InputFormat {
        pair: source.pair,
        jsonl: source.jsonl,
    };
    let mut pending = Vec::with_capacity(batch.min(1024));
    let mut n = 0;
    for (i, raw) in input.split(b'\n').enumerate() {
        let raw = raw.map_err(TokenizeCliError::Io)?;
        pending.push(parse_line(&raw, format, i + 1)?);
        n += 1;
        if pending.len() == batch {
            f(&pending)?;
            pending.clear();
        }
    }
    if !pending.is_empty() {
        f(&pending)?;
    }
    Ok(n)
}

fn line(out: &mut impl Write, v: &Value) -> Result<(), TaskCliError> {
    serde_json::to_writer(&mut *out, v).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// One line of text for a terminal: control characters shown escaped.
fn shown(s: &str) -> String {
    s.chars().flat_map(char::escape_debug).collect()
}

/// `berth classify`: each text's (or pair's) `top_k` labels (all with `None`).
pub fn classify(
    model: &Model,
    items: &[Item],
    function: Option<ScoreFn>,
    top_k: Option<usize>,
    json: bool,
    out: &mut impl Write,
) -> Result<(), TaskCliError> {
    let function = function.unwrap_or_else(|| model.score_fn());
    let results: Vec<Classification> = match items.first().is_some_and(|i| i.1.is_some()) {
        true => {
            let pairs: Vec<(&str, &str)> = items
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_deref().unwrap_or("")))
                .collect();
            model.classify_pairs_with(&pairs, function)?
        }
        false => {
            let texts: Vec<&str> = items.iter().map(|i| i.0.as_str()).collect();
            model.classify_with(&texts, function)?
        }
    };
    for (c, (text, pair)) in results.iter().zip(items) {
        let labels = &c.labels[..c.labels.len().min(top_k.unwrap_or(usize::MAX))];
        if json {
            let v: Vec<Value> = labels
                .iter()
                .map(|l| json!({"label": l.label, "score": l.score}))
                .collect();
            line(out, &Value::Array(v))?;
            continue;
        }
        let input = match pair {
            Some(p) => format!("{} | {}", shown(text), shown(p)),
            None => shown(text),
        };
        match labels {
            [one] => writeln!(out, "{}\t{:.4}\t{input}", one.label, one.score)?,
            _ => {
                writeln!(out, "{input}")?;
                for l in labels {
                    writeln!(out, "  {:.4}\t{}", l.score, l.label)?;
                }
            }
        }
    }
    Ok(())
}

fn entity_json(e: &Entity, aggregation: Aggregation) -> Value {
    match aggregation {
        Aggregation::None => json!({
            "entity": e.label, "score": e.score, "index": e.index,
            "word": e.word, "start": e.start, "end": e.end,
        }),
        _ => json!({
            "entity_group": e.label, "score": e.score,
            "word": e.word, "start": e.start, "end": e.end,
        }),
    }
}

/// `berth ner`: each text's entities.
pub fn ner(
    model: &Model,
    items: &[Item],
    aggregation: Aggregation,
    json: bool,
    out: &mut impl Write,
) -> Result<(), TaskCliError> {
    let texts: Vec<&str> = items.iter().map(|i| i.0.as_str()).collect();
    for (tags, text) in model.tag(&texts, aggregation)?.iter().zip(&texts) {
        if json {
            let v = tags.entities.iter().map(|e| entity_json(e, aggregation));
            line(out, &Value::Array(v.collect()))?;
            continue;
        }
        writeln!(out, "{}", shown(text))?;
        for e in &tags.entities {
            writeln!(
                out,
                "  {}\t{:.4}\t{}..{}\t{}",
                e.label,
                e.score,
                e.start,
                e.end,
                shown(&e.word)
            )?;
        }
    }
    Ok(())
}

fn answer_json(a: &Answer) -> Value {
    json!({"score": a.score, "start": a.start, "end": a.end, "answer": a.answer})
}

/// `berth qa`: the answers to one question about one context, best first.
pub fn qa(
    model: &Model,
    question: &str,
    context: &str,
    options: &QaOptions,
    json: bool,
    out: &mut impl Write,
) -> Result<(), TaskCliError> {
    let answers = model.answer(question, context, options)?;
    if json {
        // The pipeline's shape: one object for top_k 1, else a list.
        let v = match options.top_k {
            1 => answers.first().map_or(Value::Null, answer_json),
            _ => Value::Array(answers.iter().map(answer_json).collect()),
        };
        return line(out, &v);
    }
    for a in &answers {
        writeln!(
            out,
            "{:.4}\t{}..{}\t{}",
            a.score,
            a.start,
            a.end,
            shown(&a.answer)
        )?;
    }
    Ok(())
}

fn fill_json(f: &Fill) -> Value {
    json!({"score": f.score, "token": f.token, "token_str": f.token_str, "sequence": f.sequence})
}

/// `berth fill-mask`: each text's `top_k` candidates per mask.
pub fn fill_mask(
    model: &Model,
    items: &[Item],
    top_k: usize,
    json: bool,
    out: &mut impl Write,
) -> Result<(), TaskCliError> {
    let texts: Vec<&str> = items.iter().map(|i| i.0.as_str()).collect();
    for fm in model.fill_mask(&texts, top_k)? {
        if json {
            // The pipeline's shape: a list for one mask, a list of lists for several.
            let lists: Vec<Value> = fm
                .masks
                .iter()
                .map(|m| Value::Array(m.iter().map(fill_json).collect()))
                .collect();
            let v = match <[Value; 1]>::try_from(lists) {
                Ok([one]) => one,
                Err(many) => Value::Array(many),
            };
            line(out, &v)?;
            continue;
        }
        for (i, mask) in fm.masks.iter().enumerate() {
            if fm.masks.len() > 1 {
                writeln!(out, "mask {}:", i + 1)?;
            }
            for f in mask {
                writeln!(
                    out,
                    "{:.4}\t{}\t{}",
                    f.score,
                    shown(&f.token_str),
                    shown(&f.sequence)
                )?;
            }
        }
    }
    Ok(())
}

/// `berth rerank`: the documents by relevance to the query, best first.
pub fn rerank(
    model: &Model,
    query: &str,
    documents: &[String],
    top_k: Option<usize>,
    json: bool,
    out: &mut impl Write,
) -> Result<(), TaskCliError> {
    let docs: Vec<&str> = documents.iter().map(String::as_str).collect();
    let ranked: Vec<Ranked> = model.rerank(query, &docs, top_k)?;
    for r in &ranked {
        let text = docs[r.index];
        if json {
            // sentence-transformers' CrossEncoder.rank(..., return_documents=True).
            line(
                out,
                &json!({"corpus_id": r.index, "score": r.score, "text": text}),
            )?;
        } else {
            writeln!(out, "{:.4}\t{}\t{}", r.score, r.index, shown(text))?;
        }
    }
    Ok(())
}
