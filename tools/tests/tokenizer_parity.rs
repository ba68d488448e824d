//! berth's tokenizer against Hugging Face `tokenizers` 0.23.3 (all-MiniLM-L6-v2's
//! tokenizer.json, as sentence-transformers configures it) on the parity corpus
//! (fixtures/tokenizer: 7,000+ lines from scripts/tokenizer/make_corpus.py, expected output
//! from scripts/tokenizer/make_expected.py): identical ids, type ids, byte offsets, decoded
//! text, and errors where Hugging Face raises.

mod support;

use std::path::{Path, PathBuf};

use berth::config::TokenizerConfig;
use berth::tokenizer::{EncodeOptions, Encoding, Tokenizer, Truncation};
use berth_tools::convert::{convert_dir, Options, OutDtype};
use serde_json::Value;
use support::reference;

fn minilm_config() -> TokenizerConfig {
    let c = convert_dir(
        &support::minilm_dir(),
        &Options {
            dtype: OutDtype::F32,
            progress: false,
            smoothing: true,
        },
    )
    .unwrap();
    c.tokenizer.unwrap()
}

fn minilm_tokenizer() -> Tokenizer {
    Tokenizer::new(&minilm_config())
}

/// The fixtures directory: fixtures/tokenizer, or `$BERTH_TOKENIZER_FIXTURES` (to run the
/// same comparison on a corpus generated elsewhere, for instance a large random one).
fn fixtures_dir() -> PathBuf {
    std::env::var_os("BERTH_TOKENIZER_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| reference().join("../tokenizer"))
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Compares every `every`-th corpus line with `expected`; returns the mismatches.
fn compare(tok: &Tokenizer, expected_file: &str, every: usize) -> Vec<String> {
    let dir = fixtures_dir();
    let corpus = jsonl(&dir.join("corpus.jsonl"));
    let expected = jsonl(&dir.join(expected_file));
    let cases: Vec<(usize, &Value)> = corpus.iter().enumerate().step_by(every).collect();
    assert_eq!(cases.len(), expected.len(), "{expected_file}");
    let mut enc = Encoding::default();
    let mut failures = Vec::new();
    let (mut pairs, mut errors) = (0, 0);
    for ((i, case), want) in cases.into_iter().zip(&expected) {
        let a = case["a"].as_str().unwrap();
        let opts = EncodeOptions {
            max_length: Some(case["max_length"].as_u64().unwrap_or(256) as usize),
            truncation: Truncation::parse(case["truncation"].as_str().unwrap_or("longest_first"))
                .unwrap(),
            add_special_tokens: true,
        };
        let got = match case["b"].as_str() {
            Some(b) => {
                pairs += 1;
                tok.encode_pair_into(a, b, &opts, &mut enc)
            }
            None => tok.encode_into(a, &opts, &mut enc),
        };
        let mut fail =
            |what: String| failures.push(format!("line {}: {what}\n    input {case}", i + 1));
        match (got, want.get("error")) {
            (Err(_), Some(_)) => {
                errors += 1;
                continue;
            }
            (Err(e), None) => {
                fail(format!("berth failed ({e}), Hugging Face did not"));
                continue;
            }
            (Ok(()), Some(e)) => {
                fail(format!("Hugging Face failed ({e}), berth did not"));
                continue;
            }
            (Ok(()), None) => {}
        }
        let ids = u32s(&want["ids"]);
        if enc.ids != ids {
            fail(format!("ids\n    berth {:?}\n    hf    {ids:?}", enc.ids));
            continue;
        }
        let offsets: Vec<(usize, usize)> = u32s(&want["offsets"])
            .chunks(2)
            .map(|p| (p[0] as usize, p[1] as usize))
            .collect();
        if enc.offsets != offsets {
            fail(format!(
                "offsets\n    berth {:?}\n    hf    {offsets:?}",
                enc.offsets
            ));
        }
        if let Some(t) = want.get("type_ids") {
            if enc.type_ids != u32s(t) {
                fail(format!("type ids {:?} vs {t}", enc.type_ids));
            }
        } else if enc.type_ids.iter().any(|&t| t != 0) {
            fail("non-zero type ids for a single sequence".into());
        }
        for (skip, key) in [(true, "decoded"), (false, "decoded_all")] {
            let d = tok.decode(&enc.ids, skip);
            if d != want[key].as_str().unwrap() {
                fail(format!("{key}\n    berth {d:?}\n    hf    {}", want[key]));
            }
        }
    }
    println!(
        "{expected_file}: {} lines ({pairs} pairs, {errors} truncation errors as in Hugging Face), {} mismatches",
        expected.len(),
        failures.len()
    );
    for f in failures.iter().take(25) {
        println!("{f}");
    }
    failures
}

#[test]
fn matches_hugging_face_on_the_parity_corpus() {
    let failures = compare(&minilm_tokenizer(), "expected.jsonl", 1);
    assert!(failures.is_empty(), "{} mismatches", failures.len());
}

/// The other BertNormalizer settings (scripts/tokenizer/make_expected.py, VARIANTS), with
/// MiniLM's vocabulary, on every third line.
#[test]
fn matches_hugging_face_with_other_normalizer_settings() {
    let base = minilm_config();
    let cased = TokenizerConfig {
        lowercase: false,
        strip_accents: None,
        ..base.clone()
    };
    let strip_only = TokenizerConfig {
        clean_text: false,
        handle_chinese_chars: false,
        strip_accents: Some(true),
        lowercase: false,
        ..base
    };
    let mut failures = compare(&Tokenizer::new(&cased), "expected-cased.jsonl", 3);
    failures.extend(compare(
        &Tokenizer::new(&strip_only),
        "expected-strip-only.jsonl",
        3,
    ));
    assert!(failures.is_empty(), "{} mismatches", failures.len());
}

/// The reference sentences' ids, attention masks and offsets (fixtures/reference/minilm).
#[test]
fn matches_the_reference_tokens() {
    let tok = minilm_tokenizer();
    let sentences: Vec<String> = serde_json::from_str(
        &std::fs::read_to_string(reference().join("minilm/sentences.json")).unwrap(),
    )
    .unwrap();
    let tokens = jsonl(&reference().join("minilm/tokens.json"));
    let tokens = tokens[0].as_array().unwrap();
    let mut enc = Encoding::default();
    for (s, t) in sentences.iter().zip(tokens) {
        tok.encode_into(s, &EncodeOptions::default(), &mut enc)
            .unwrap();
        assert_eq!(enc.ids, u32s(&t["input_ids"]), "{s:?}");
        let words: Vec<&str> = enc.ids.iter().map(|&id| tok.token(id).unwrap()).collect();
        let want: Vec<&str> = t["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(words, want);
    }
}

/// `hf::from_dir` builds the same tokenizer straight from a checkpoint directory, from
/// tokenizer.json or (without it) from vocab.txt + tokenizer_config.json.
#[test]
fn builds_from_a_checkpoint_directory() {
    let converted = minilm_config();
    let (_, from_json) = berth::tokenizer::hf::from_dir(&support::minilm_dir()).unwrap();
    assert_eq!(from_json, converted);
    let d = tempfile::tempdir().unwrap();
    support::copy_dir(&support::minilm_dir(), d.path());
    std::fs::remove_file(d.path().join("tokenizer.json")).unwrap();
    let (tok, from_txt) = berth::tokenizer::hf::from_dir(d.path()).unwrap();
    assert_eq!(from_txt, converted);
    let enc = tok
        .encode("Hello, wörld!", &EncodeOptions::default())
        .unwrap();
    assert_eq!(enc.ids, [101, 7592, 1010, 2088, 999, 102]);
    std::fs::remove_file(d.path().join("vocab.txt")).unwrap();
    assert!(matches!(
        berth::tokenizer::hf::from_dir(d.path()),
        Err(berth::tokenizer::hf::HfError::NotFound { .. })
    ));
}
