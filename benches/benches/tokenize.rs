//! Tokenizer throughput (MB/s and sentences/s), single thread, on the text sets that
//! benches/tokenizer_vs_hf.py writes and times Hugging Face `tokenizers` on:
//! `short` (English prose sentences), `long` (paragraphs of ~40 sentences) and `mixed` (every
//! single-sequence line of the parity corpus: all scripts, emoji, marks, controls, code).
//! Run the script, not this bench alone: it prepares the texts and prints the ratios.

use std::path::PathBuf;

use berth::tokenizer::{EncodeOptions, Encoding};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn texts_dir() -> PathBuf {
    std::env::var_os("BERTH_BENCH_TEXTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-texts"))
}

fn tokenize(c: &mut Criterion) {
    let minilm = berth_tools::cache::fetched_minilm_dir().unwrap_or_else(|e| panic!("{e}"));
    let (tok, _) = berth::tokenizer::hf::from_dir(&minilm).expect("MiniLM tokenizer");
    let mut g = c.benchmark_group("tokenize");
    for set in ["short", "long", "mixed"] {
        let path = texts_dir().join(format!("{set}.jsonl"));
        let texts: Vec<String> = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run benches/tokenizer_vs_hf.py)", path.display()))
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON string per line"))
            .collect();
        let bytes: usize = texts.iter().map(String::len).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        let opts = EncodeOptions::default();
        let mut enc = Encoding::default();
        g.bench_function(format!("{set} ({} texts)", texts.len()), |b| {
            b.iter(|| {
                let mut n = 0;
                for t in &texts {
                    tok.encode_into(t, &opts, &mut enc).expect("encodes");
                    n += enc.len();
                }
                n
            })
        });
    }
    g.finish();
}

criterion_group!(benches, tokenize);
criterion_main!(benches);
