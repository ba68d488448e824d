//! `berth classify`, `ner`, `qa`, `fill-mask` and `rerank` end to end on the tiny task models
//! (with fixtures/pipelines' tokenizers) and MiniLM: the JSON they print is what the library
//! computes, under the pipelines' field names; the text output has a line per result; errors
//! are one line and exit 1.

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use berth::{Aggregation, Model, QaOptions};
use berth_tools::convert::OutDtype;
use serde_json::{json, Value};

fn berth(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the berth binary runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Numbers rounded to f32, which is what berth prints: serde_json's text round trip of an
/// f64 may differ in its last bit.
fn canon(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => json!(n.as_f64().unwrap() as f32),
        Value::Array(a) => Value::Array(a.into_iter().map(canon).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, canon(v))).collect()),
        v => v,
    }
}

fn json_lines(out: &Output) -> Vec<Value> {
    ok(out)
        .lines()
        .map(|l| canon(serde_json::from_str(l).unwrap()))
        .collect()
}

fn assert_clean_failure(out: &Output, context: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{context}: {err}");
    assert!(err.starts_with("error: "), "{context}: {err}");
    assert_eq!(err.lines().count(), 1, "{context}: {err}");
    assert!(!err.contains("panicked"), "{context}: {err}");
}

/// The tiny `task` model with fixtures/pipelines' tokenizer at f32, loaded, and its path (in
/// a directory the guard keeps).
fn setup(task: &str) -> (tempfile::TempDir, String, Model) {
    let dir = tempfile::tempdir().unwrap();
    let path = support::tiny_task(task, task, OutDtype::F32, dir.path());
    let model = Model::load(&path).unwrap();
    (dir, path.to_str().unwrap().to_owned(), model)
}

/// An f32 score as [`canon`] leaves it.
fn score(x: f32) -> Value {
    canon(json!(x))
}

#[test]
fn classify_prints_the_library_labels() {
    let (_dir, p, model) = setup("sequence_classification");
    let p = p.as_str();
    let texts = ["I love it.", "Not my thing at all!"];
    let want = model.classify(&texts).unwrap();
    let out = berth(
        &["classify", p, texts[0], texts[1], "--top-k", "2", "--json"],
        None,
    );
    for (v, c) in json_lines(&out).iter().zip(&want) {
        let labels: Vec<Value> = c.labels[..2]
            .iter()
            .map(|l| json!({"label": l.label, "score": score(l.score)}))
            .collect();
        assert_eq!(*v, Value::Array(labels));
    }
    // Pairs from stdin, tab-separated and as JSON arrays.
    let pairs = [("A man eats.", "Someone eats."), ("Q?", "")];
    let want = model.classify_pairs(&pairs).unwrap();
    let tabbed: String = pairs.iter().map(|(a, b)| format!("{a}\t{b}\n")).collect();
    let jsonl: String = pairs
        .iter()
        .map(|(a, b)| json!([a, b]).to_string() + "\n")
        .collect();
    for (args, input) in [(vec![], tabbed), (vec!["--jsonl"], jsonl)] {
        let mut a = vec![
            "classify",
            p,
            "--pair",
            "--json",
            "--function-to-apply",
            "softmax",
        ];
        a.extend(args);
        let lines = json_lines(&berth(&a, Some(&input)));
        assert_eq!(lines.len(), 2);
        for (v, c) in lines.iter().zip(&want) {
            assert_eq!(v[0]["label"], json!(c.labels[0].label));
            assert_eq!(v[0]["score"], score(c.labels[0].score));
        }
    }
    // Text output: one line a text at --top-k 1.
    let text = ok(&berth(&["classify", p, "a", "b", "c"], None));
    assert_eq!(text.lines().count(), 3, "{text}");
    assert_clean_failure(&berth(&["classify", p, "--pair", "odd"], None), "odd pair");
    assert_clean_failure(&berth(&["ner", p, "x"], None), "wrong head");
    assert_clean_failure(
        &berth(&["classify", p, "--max-seq-len", "1", "x"], None),
        "max-seq-len 1",
    );
}

#[test]
fn ner_prints_the_library_entities_under_the_pipeline_names() {
    let (_dir, p, model) = setup("token_classification");
    let p = p.as_str();
    let texts = ["Ada Lovelace lived in London.", "Zürich 🙂 is nice"];
    for (name, agg) in [
        ("none", Aggregation::None),
        ("simple", Aggregation::Simple),
        ("max", Aggregation::Max),
    ] {
        let want = model.tag(&texts, agg).unwrap();
        let input: String = texts.iter().map(|t| json!(t).to_string() + "\n").collect();
        let lines = json_lines(&berth(
            &["ner", p, "--aggregation", name, "--json", "--jsonl"],
            Some(&input),
        ));
        assert_eq!(lines.len(), texts.len());
        for (v, tags) in lines.iter().zip(&want) {
            let v = v.as_array().unwrap();
            assert_eq!(v.len(), tags.entities.len());
            for (v, e) in v.iter().zip(&tags.entities) {
                let key = if agg == Aggregation::None {
                    "entity"
                } else {
                    "entity_group"
                };
                assert_eq!(v[key], json!(e.label));
                assert_eq!(v["score"], score(e.score));
                assert_eq!(
                    (&v["word"], &v["start"], &v["end"]),
                    (&json!(e.word), &json!(e.start), &json!(e.end))
                );
                assert_eq!(v.get("index").cloned(), e.index.map(|i| json!(i)));
            }
        }
    }
    let text = ok(&berth(
        &["ner", p, texts[0], "--aggregation", "first"],
        None,
    ));
    assert!(text.starts_with(texts[0]), "{text}");
}

#[test]
fn qa_prints_the_library_answers() {
    let (_dir, p, model) = setup("question_answering");
    let p = p.as_str();
    let context = "Ada Lovelace lived in London. She wrote the first program for the Analytical \
                   Engine of Charles Babbage, long before computers existed.";
    let question = "Who wrote the first program?";
    let opts = QaOptions {
        top_k: 3,
        doc_stride: Some(8),
        max_seq_len: Some(32),
        ..QaOptions::default()
    };
    let want = model.answer(question, context, &opts).unwrap();
    let out = berth(
        &[
            "qa",
            p,
            "--question",
            question,
            "--top-k",
            "3",
            "--doc-stride",
            "8",
            "--max-seq-len",
            "32",
            "--json",
        ],
        Some(context),
    );
    let v = &json_lines(&out)[0];
    let want_json: Vec<Value> = want
        .iter()
        .map(|a| json!({"score": score(a.score), "start": a.start, "end": a.end, "answer": a.answer}))
        .collect();
    assert_eq!(*v, Value::Array(want_json));
    // --top-k 1 prints one object, as the pipeline returns.
    let one = &json_lines(&berth(
        &[
            "qa",
            p,
            "--question",
            question,
            "--context",
            context,
            "--json",
        ],
        None,
    ))[0];
    assert!(one.is_object() && one["answer"].is_string(), "{one}");
    let text = ok(&berth(
        &[
            "qa",
            p,
            "--question",
            question,
            "--context",
            context,
            "--top-k",
            "2",
        ],
        None,
    ));
    assert_eq!(text.lines().count(), 2, "{text}");
    assert_clean_failure(
        &berth(
            &[
                "qa",
                p,
                "--question",
                question,
                "--context",
                context,
                "--max-seq-len",
                "16",
                "--doc-stride",
                "9",
            ],
            None,
        ),
        "stride too large",
    );
    assert_clean_failure(
        &berth(
            &["qa", p, "--question", "q", "--context", "c", "--top-k", "0"],
            None,
        ),
        "top-k 0",
    );
}

#[test]
fn fill_mask_prints_the_library_candidates() {
    let (_dir, p, model) = setup("masked_lm");
    let p = p.as_str();
    let texts = ["Paris is the [MASK] of France.", "[MASK] and [MASK]."];
    let want = model.fill_mask(&texts, 2).unwrap();
    let lines = json_lines(&berth(
        &["fill-mask", p, texts[0], texts[1], "--top-k", "2", "--json"],
        None,
    ));
    let fill = |f: &berth::Fill| json!({"score": score(f.score), "token": f.token, "token_str": f.token_str, "sequence": f.sequence});
    // One mask: a list; several: a list of lists.
    assert_eq!(
        lines[0],
        Value::Array(want[0].masks[0].iter().map(fill).collect())
    );
    let many: Vec<Value> = want[1]
        .masks
        .iter()
        .map(|m| Value::Array(m.iter().map(fill).collect()))
        .collect();
    assert_eq!(lines[1], Value::Array(many));
    let text = ok(&berth(&["fill-mask", p, texts[0], "--top-k", "3"], None));
    assert_eq!(text.lines().count(), 3, "{text}");
    assert_clean_failure(&berth(&["fill-mask", p, "no mask here"], None), "no mask");
}

#[test]
fn rerank_orders_documents_with_a_cross_encoder_and_with_minilm() {
    let dir = tempfile::tempdir().unwrap();
    let path = support::tiny_task(
        "sequence_classification",
        "sequence_classification",
        OutDtype::F32,
        dir.path(),
    );
    let docs = [
        "The cat sleeps on the sofa.",
        "Stocks fell sharply.",
        "Dogs are loyal pets.",
    ];
    let (_guard, minilm) = support::convert_minilm(OutDtype::F32);
    for path in [path, minilm] {
        let p = path.to_str().unwrap();
        let model = Model::load(&path).unwrap();
        let want = model.rerank("a pet animal", &docs, Some(2)).unwrap();
        let input: String = docs.iter().map(|d| format!("{d}\n")).collect();
        let lines = json_lines(&berth(
            &[
                "rerank",
                p,
                "--query",
                "a pet animal",
                "--top-k",
                "2",
                "--json",
            ],
            Some(&input),
        ));
        assert_eq!(lines.len(), 2);
        for (v, r) in lines.iter().zip(&want) {
            assert_eq!(
                *v,
                json!({"corpus_id": r.index, "score": score(r.score), "text": docs[r.index]})
            );
        }
    }
}

/// The tiny BertModel (no pooling config) with fixtures/pipelines' tokenizer, at f32.
fn tiny_encoder(dir: &Path) -> PathBuf {
    support::tiny_task("masked_lm", "bert_model", OutDtype::F32, dir)
}

#[test]
fn embed_options_pool_cut_and_normalise_and_npy_holds_the_same_values() {
    use berth::config::Pooling;
    use berth::ModelOptions;
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_encoder(dir.path());
    let texts = ["The quick brown fox.", "", "Zürich 🙂"];
    let base = Model::load(&path).unwrap();
    let hidden = base.config().hidden_size;
    let batch = base.encode(&texts).unwrap();
    let states = base.forward(&batch).unwrap().last_hidden_state.data;
    let row = |b: usize, p: usize| &states[(b * batch.seq + p) * hidden..][..hidden];
    let mean = base.embed(&texts).unwrap();
    let load = |o: ModelOptions| Model::load_with(&path, o).unwrap().embed(&texts).unwrap();
    let cls = load(ModelOptions::default().pooling(Pooling::Cls));
    let cut = load(ModelOptions::default().truncate_dim(8));
    let unit = load(ModelOptions::default().truncate_dim(8).normalize(true));
    for b in 0..texts.len() {
        // No pooling in the file: the mean of the real tokens' states (f64 sums, so 1e-6).
        let n = batch.lengths[b];
        for (i, &v) in mean.get(b).unwrap().iter().enumerate() {
            let want = (0..n).map(|p| f64::from(row(b, p)[i])).sum::<f64>() / n as f64;
            assert!((f64::from(v) - want).abs() < 1e-6, "text {b} dim {i}");
        }
        assert_eq!(
            cls.get(b).unwrap(),
            row(b, 0),
            "CLS pooling is the first state"
        );
        assert_eq!(cut.get(b).unwrap(), &mean.get(b).unwrap()[..8]);
        let u = unit.get(b).unwrap();
        let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6, "{norm}");
        for (x, y) in u.iter().zip(cut.get(b).unwrap()) {
            let scale = norm
                / cut
                    .get(b)
                    .unwrap()
                    .iter()
                    .map(|x| x * x)
                    .sum::<f32>()
                    .sqrt();
            assert!((x - y * scale).abs() < 1e-6);
        }
    }
    // --npy: a float32 array of texts x dim, the library's values.
    let npy = dir.path().join("out.npy");
    let p = path.to_str().unwrap();
    let args = [
        "embed",
        p,
        "--truncate-dim",
        "8",
        "--normalize",
        "--npy",
        npy.to_str().unwrap(),
    ];
    let input: String = texts.iter().map(|t| format!("{t}\n")).collect();
    ok(&berth(&args, Some(&input)));
    let bytes = std::fs::read(&npy).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(
        header.contains("'descr': '<f4'") && header.contains("'shape': (3, 8)"),
        "{header}"
    );
    assert_eq!((10 + header_len) % 64, 0);
    let values: Vec<f32> = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values, unit.as_slice());
    assert_clean_failure(
        &berth(&["embed", p, "--truncate-dim", "0", "x"], None),
        "truncate-dim 0",
    );
}

#[test]
fn windows_read_a_long_text_whole_and_leave_short_ones_alone() {
    use berth::tokenizer::{BatchEncoding, EncodeOptions};
    use berth::ModelOptions;
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_encoder(dir.path());
    let long = "The Amazon rainforest covers much of the Amazon basin of South America.";
    let texts = ["a short one", long, "", long];
    let (max, stride) = (16, 5);
    let opts = ModelOptions::default().max_seq_len(max);
    let cut = Model::load_with(&path, opts).unwrap();
    let whole = Model::load_with(&path, opts.windows(stride)).unwrap();
    let (a, b) = (cut.embed(&texts).unwrap(), whole.embed(&texts).unwrap());
    assert!(a.truncated(1) && !b.truncated(1));
    assert_eq!(
        a.get(0),
        b.get(0),
        "a text that fits is embedded as without windows"
    );
    assert_eq!(a.get(2), b.get(2));
    assert_eq!(b.get(1), b.get(3));
    // By hand: the text's tokens in windows of max - 2 moving by max - 2 - stride, each
    // [CLS] w [SEP], mean-pooled, averaged weighted by length.
    let tok = cut.tokenizer();
    let ids = tok
        .encode(
            long,
            &EncodeOptions {
                max_length: Some(1000),
                add_special_tokens: false,
                ..EncodeOptions::default()
            },
        )
        .unwrap()
        .ids;
    let room = max - 2;
    let mut windows = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + room).min(ids.len());
        let mut w = vec![tok.cls_id()];
        w.extend_from_slice(&ids[start..end]);
        w.push(tok.sep_id());
        windows.push(w);
        if end == ids.len() {
            break;
        }
        start += room - stride;
    }
    assert!(windows.len() >= 3, "{}", windows.len());
    let hidden = cut.config().hidden_size;
    let mut sum = vec![0.0f64; hidden];
    let mut total = 0.0;
    for w in &windows {
        let mut batch = BatchEncoding::default();
        batch.batch = 1;
        batch.seq = w.len();
        batch.input_ids = w.clone();
        batch.attention_mask = vec![1; w.len()];
        batch.token_type_ids = vec![0; w.len()];
        let h = cut.forward(&batch).unwrap().last_hidden_state.data;
        for (i, s) in sum.iter_mut().enumerate() {
            let mean = (0..w.len())
                .map(|p| f64::from(h[p * hidden + i]))
                .sum::<f64>()
                / w.len() as f64;
            *s += mean * w.len() as f64;
        }
        total += w.len() as f64;
    }
    for (i, (&got, s)) in b.get(1).unwrap().iter().zip(&sum).enumerate() {
        assert!(
            (f64::from(got) - s / total).abs() < 1e-5,
            "dim {i}: {got} vs {}",
            s / total
        );
    }
    assert!(
        Model::load_with(&path, opts.windows(14)).is_err(),
        "stride must leave room"
    );
}
