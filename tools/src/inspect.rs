//! `berth inspect`: a file's config, tokenizer summary and tensor table, as text or JSON.

use berth::config::{ModelConfig, TokenizerConfig};
use berth::format::{BerthFile, TensorInfo};
use serde_json::{json, Value};

/// Bytes as a short human figure (MB are 10^6 bytes).
pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn strip_accents_text(t: &TokenizerConfig) -> &'static str {
    match t.strip_accents {
        None if t.lowercase => "yes (follows lowercase)",
        None => "no (follows lowercase)",
        Some(true) => "yes",
        Some(false) => "no",
    }
}

fn token(t: &TokenizerConfig, id: u32) -> &str {
    t.vocab.get(id as usize).unwrap_or("?")
}

fn param_count(file: &BerthFile) -> u64 {
    file.header().tensors.iter().map(|t| t.numel() as u64).sum()
}

/// The human-readable report.
pub fn text(file: &BerthFile) -> String {
    let h = file.header();
    let c: &ModelConfig = &h.config;
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!(
        "format      .berth {}.{}, {} ({}), header {}, data crc32 {:#010x}",
        h.major,
        h.minor,
        human_bytes(file.len() as u64),
        if file.is_mapped() {
            "mapped"
        } else {
            "in memory"
        },
        human_bytes(h.header_len),
        h.data_crc
    ));
    line(format!(
        "model       {}: {} layers, hidden {}, {} heads, intermediate {}, {}, layer_norm_eps {:e}",
        c.head.architecture(),
        c.num_layers,
        c.hidden_size,
        c.num_heads,
        c.intermediate_size,
        c.hidden_act.name(),
        c.layer_norm_eps
    ));
    line(format!(
        "            vocab {}, positions {}, type vocab {}, pooler {}, {} parameters",
        c.vocab_size,
        c.max_position_embeddings,
        c.type_vocab_size,
        yes(c.has_pooler),
        param_count(file)
    ));
    if c.tied_decoder {
        line("            decoder tied to the word embeddings".into());
    }
    if !c.labels.is_empty() {
        line(format!(
            "labels      {} ({})",
            c.labels.join(", "),
            c.problem_type.name()
        ));
    }
    line(format!(
        "embedding   {} pooling{}",
        c.pooling.name(),
        if c.normalize { ", L2-normalised" } else { "" }
    ));
    match file.tokenizer() {
        None => line("tokenizer   none (id-level use only)".into()),
        Some(t) => {
            line(format!(
                "tokenizer   WordPiece, {} tokens, max length {}, lowercase {}, strip accents {}, CJK split {}, clean text {}",
                t.vocab.len(),
                t.max_length,
                yes(t.lowercase),
                strip_accents_text(t),
                yes(t.handle_chinese_chars),
                yes(t.clean_text)
            ));
            let specials: Vec<String> = t
                .special_ids
                .iter()
                .map(|&id| format!("{}={id}", token(t, id)))
                .collect();
            line(format!(
                "            prefix {:?}, max chars per word {}, unk {} cls {} sep {} pad {} mask {}, specials {}",
                t.continuing_subword_prefix,
                t.max_input_chars_per_word,
                token(t, t.unk_id),
                token(t, t.cls_id),
                token(t, t.sep_id),
                token(t, t.pad_id),
                token(t, t.mask_id),
                specials.join(" ")
            ));
        }
    }
    line(format!("tensors     {}", h.tensors.len()));
    let width = h.tensors.iter().map(|t| t.name.len()).max().unwrap_or(4);
    line(format!(
        "  {:<width$}  {:<5} {:<10} {:<24} {:<14} {:>12} {:>10}",
        "name", "dtype", "layout", "quant", "shape", "offset", "bytes"
    ));
    for t in &h.tensors {
        line(tensor_line(t, width, h.data_offset));
    }
    s
}

fn tensor_line(t: &TensorInfo, width: usize, data_offset: u64) -> String {
    let shape = format!("{:?}", t.shape);
    let bytes = t.data.len() + t.scales.as_ref().map_or(0, |r| r.len());
    format!(
        "  {:<width$}  {:<5} {:<10} {:<24} {:<14} {:>12} {:>10}",
        t.name,
        t.dtype.name(),
        t.layout.name(),
        t.quant.name(),
        shape,
        data_offset + t.data.start as u64,
        bytes
    )
}

/// The JSON report.
pub fn json(file: &BerthFile, verified: Option<bool>) -> Value {
    let h = file.header();
    let c = &h.config;
    let tokenizer = file.tokenizer().map(|t| {
        json!({
            "kind": "wordpiece",
            "vocab_size": t.vocab.len(),
            "max_length": t.max_length,
            "lowercase": t.lowercase,
            "strip_accents": t.strip_accents,
            "handle_chinese_chars": t.handle_chinese_chars,
            "clean_text": t.clean_text,
            "continuing_subword_prefix": t.continuing_subword_prefix,
            "max_input_chars_per_word": t.max_input_chars_per_word,
            "unk_token": token(t, t.unk_id),
            "cls_token": token(t, t.cls_id),
            "sep_token": token(t, t.sep_id),
            "pad_token": token(t, t.pad_id),
            "mask_token": token(t, t.mask_id),
            "special_ids": t.special_ids,
        })
    });
    let tensors: Vec<Value> = h
        .tensors
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "dtype": t.dtype.name(),
                "layout": t.layout.name(),
                "quant": t.quant.name(),
                "shape": t.shape,
                "offset": h.data_offset + t.data.start as u64,
                "bytes": t.data.len(),
                "scale_bytes": t.scales.as_ref().map_or(0, |r| r.len()),
            })
        })
        .collect();
    json!({
        "format_version": format!("{}.{}", h.major, h.minor),
        "file_bytes": file.len(),
        "header_bytes": h.header_len,
        "data_offset": h.data_offset,
        "data_crc32": h.data_crc,
        "verified": verified,
        "config": {
            "architecture": c.head.architecture(),
            "hidden_act": c.hidden_act.name(),
            "vocab_size": c.vocab_size,
            "hidden_size": c.hidden_size,
            "num_hidden_layers": c.num_layers,
            "num_attention_heads": c.num_heads,
            "intermediate_size": c.intermediate_size,
            "max_position_embeddings": c.max_position_embeddings,
            "type_vocab_size": c.type_vocab_size,
            "layer_norm_eps": c.layer_norm_eps,
            "has_pooler": c.has_pooler,
            "tied_decoder": c.tied_decoder,
            "pooling": c.pooling.name(),
            "normalize": c.normalize,
            "problem_type": c.problem_type.name(),
            "id2label": c.labels,
            "parameters": param_count(file),
        },
        "tokenizer": tokenizer,
        "tensors": tensors,
    })
}
