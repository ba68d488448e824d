//! The `berth` binary end to end: convert, inspect, run, and its errors (one line and a
//! non-zero exit, never a panic).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{max_abs_diff, read, reference};

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the berth binary runs")
}

/// `berth bench` on `model`, M1 on one thread, two runs and no minimum time, then `extra`.
fn bench_m1(model: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "bench",
        "--model",
        model,
        "--workload",
        "M1",
        "--threads",
        "1",
        "--runs",
        "2",
        "--min-time",
        "0",
    ];
    args.extend_from_slice(extra);
    berth(&args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A clean failure: exit code 1, "error: ..." on stderr, no panic.
fn assert_clean_failure(out: &Output, context: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{context}: {err}");
    assert!(err.starts_with("error: "), "{context}: {err}");
    assert!(!err.contains("panicked"), "{context}: {err}");
}

fn convert_tiny(task: &str, dir: &Path, dtype: &str) -> String {
    let out_path = dir.join(format!("{task}-{dtype}.berth"));
    let src = reference().join("tiny").join(task);
    let out = berth(&[
        "convert",
        src.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
        "--dtype",
        dtype,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("converted"));
    out_path.to_str().unwrap().to_owned()
}

#[test]
fn convert_inspect_run_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let model = convert_tiny("question_answering", dir.path(), "f32");

    let out = berth(&["inspect", &model, "--verify"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("BertForQuestionAnswering") && s.contains("verified    ok"),
        "{s}"
    );
    assert!(s.contains("qa_outputs.weight"));

    let out = berth(&["inspect", &model, "--json", "--verify"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["config"]["architecture"], "BertForQuestionAnswering");
    assert_eq!(v["verified"], true);
    assert_eq!(v["tensors"].as_array().unwrap().len(), 5 + 2 * 16 + 2);

    let outputs = dir.path().join("out.safetensors");
    let inputs = reference().join("tiny/inputs.safetensors");
    let mut args = vec![
        "run",
        &model,
        "--inputs",
        inputs.to_str().unwrap(),
        "--output",
        outputs.to_str().unwrap(),
    ];
    let prefixes: Vec<String> = (0..6).map(|b| format!("b{b}.")).collect();
    for p in &prefixes {
        args.extend(["--prefix", p]);
    }
    let out = berth(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = read(&outputs);
    let want = read(&reference().join("tiny/question_answering/outputs.safetensors"));
    assert_eq!(want.len(), 12);
    for (k, w) in &want {
        let g = got.get(k).unwrap_or_else(|| panic!("missing {k}"));
        assert_eq!(g.shape, w.shape);
        assert!(max_abs_diff(&g.f32, &w.f32) < 1e-4, "{k}");
    }
    // last_hidden_state is written too.
    assert!(got.contains_key("b0.last_hidden_state"));

    // A bf16 file: its linear weights say bf16, it verifies, and it runs within bf16's
    // rounding of the goldens (worst observed 1.7e-3 on this model; a miswired layer is of
    // order 1).
    let model = convert_tiny("question_answering", dir.path(), "bf16");
    let out = berth(&["inspect", &model, "--json", "--verify"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    let dtype_of = |name: &str| {
        let t = v["tensors"].as_array().unwrap().iter();
        t.clone().find(|t| t["name"] == name).unwrap()["dtype"].clone()
    };
    assert_eq!(dtype_of("qa_outputs.weight"), "bf16");
    assert_eq!(dtype_of("embeddings.word_embeddings.weight"), "f32");
    args[1] = &model;
    let out = berth(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = read(&outputs);
    for (k, w) in &want {
        assert!(max_abs_diff(&got[k].f32, &w.f32) < 1e-2, "{k}");
    }
}

#[test]
fn errors_are_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = berth(&["convert", missing.to_str().unwrap(), "-o", "/dev/null"]);
    assert_clean_failure(&out, "convert of a missing directory");
    assert!(text(&out.stderr).contains("config.json"));

    let garbage = dir.path().join("garbage.berth");
    std::fs::write(
        &garbage,
        [b"this is not a model file at all".as_slice(); 4].concat(),
    )
    .unwrap();
    let out = berth(&["inspect", garbage.to_str().unwrap()]);
    assert_clean_failure(&out, "inspect of garbage");
    assert!(text(&out.stderr).contains("bad magic"));

    let model = convert_tiny("bert_model", dir.path(), "int8");
    let out = berth(&[
        "run",
        &model,
        "--inputs",
        garbage.to_str().unwrap(),
        "--output",
        "/dev/null",
    ]);
    assert_clean_failure(&out, "run with garbage inputs");

    // Ids outside the vocabulary are an input error, not a panic.
    let bad = dir.path().join("bad.safetensors");
    let ids: Vec<u8> = [101i64, 999, 102]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![1, 3], &ids).unwrap();
    std::fs::write(
        &bad,
        safetensors::serialize([("input_ids", view)], None).unwrap(),
    )
    .unwrap();
    let out = berth(&[
        "run",
        &model,
        "--inputs",
        bad.to_str().unwrap(),
        "--output",
        "/dev/null",
    ]);
    assert_clean_failure(&out, "run with out-of-vocabulary ids");
    assert!(text(&out.stderr).contains("outside the vocabulary"));

    let out = berth(&["convert"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

/// A file with any single byte changed, or cut short, never crashes `berth inspect --verify`:
/// it exits 1 with an error message. (The library test checks every byte of a micro file; here
/// a spread of positions goes through the real binary.)
#[test]
fn corrupted_files_never_crash_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let model = convert_tiny("masked_lm", dir.path(), "int8");
    let valid = std::fs::read(&model).unwrap();
    let n = valid.len();
    let header_end = 64 + u64::from_le_bytes(valid[16..24].try_into().unwrap()) as usize;
    let mut positions: Vec<usize> = (0..64).collect();
    positions.extend((0..48).map(|i| 64 + i * (header_end - 64) / 48));
    positions.extend((0..48).map(|i| header_end + i * (n - header_end) / 48));
    positions.push(n - 1);
    let bad = dir.path().join("bad.berth");
    for &p in &positions {
        let mut f = valid.clone();
        f[p] ^= 0x5a;
        std::fs::write(&bad, &f).unwrap();
        assert_clean_failure(
            &berth(&["inspect", bad.to_str().unwrap(), "--verify"]),
            &format!("byte {p}"),
        );
    }
    for len in [
        0,
        1,
        63,
        64,
        65,
        header_end - 1,
        header_end,
        n / 2,
        n - 64,
        n - 1,
    ] {
        std::fs::write(&bad, &valid[..len]).unwrap();
        assert_clean_failure(
            &berth(&["inspect", bad.to_str().unwrap(), "--verify"]),
            &format!("cut at {len}"),
        );
    }
}

/// `berth tokenize --jsonl` (and `--pair`) through the binary against Hugging Face's output on
/// the parity corpus: every single-sequence line at the default max length, and the pairs cut
/// with one setting.
#[test]
fn tokenize_matches_hugging_face() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("minilm.berth");
    let src = support::minilm_dir();
    let out = berth(&[
        "convert",
        src.to_str().unwrap(),
        "-o",
        model.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let read = |name: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(reference().join("../tokenizer").join(name))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (corpus, expected) = (read("corpus.jsonl"), read("expected.jsonl"));
    let run = |args: &[&str], input: String| -> Vec<serde_json::Value> {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let model = model.to_str().unwrap();
    type Select = fn(&serde_json::Value) -> bool;
    let groups: [(&[&str], Select); 2] = [
        (&["tokenize", model, "--jsonl"], |c| {
            c.get("b").is_none() && c.get("max_length").is_none()
        }),
        (
            &["tokenize", model, "--jsonl", "--pair", "--max-length", "32"],
            |c| c.get("b").is_some() && c["max_length"] == 32 && c["truncation"] == "longest_first",
        ),
    ];
    for (args, select) in groups {
        let cases: Vec<usize> = (0..corpus.len()).filter(|&i| select(&corpus[i])).collect();
        let input: String = cases
            .iter()
            .map(|&i| {
                let c = &corpus[i];
                match c.get("b") {
                    Some(b) => serde_json::json!([c["a"], b]).to_string() + "\n",
                    None => c["a"].to_string() + "\n",
                }
            })
            .collect();
        let got = run(args, input);
        assert_eq!(got.len(), cases.len());
        for (g, &i) in got.iter().zip(&cases) {
            let want = &expected[i];
            assert_eq!(g["ids"], want["ids"], "line {}", i + 1);
            let flat: Vec<serde_json::Value> = g["offsets"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p.as_array().unwrap().clone())
                .collect();
            assert_eq!(
                serde_json::Value::Array(flat),
                want["offsets"],
                "line {}",
                i + 1
            );
            let tokens = g["tokens"].as_array().unwrap();
            assert_eq!(tokens.len(), g["ids"].as_array().unwrap().len());
        }
        println!("{:?}: {} lines identical", &args[2..], cases.len());
    }

    // Plain-text input, a pair by tab, and a bad line.
    let got = run(
        &["tokenize", model, "--pair"],
        "Hello world\tSecond text!\n".into(),
    );
    assert_eq!(
        got[0]["tokens"],
        serde_json::json!(["[CLS]", "hello", "world", "[SEP]", "second", "text", "!", "[SEP]"])
    );
    assert_eq!(
        got[0]["type_ids"],
        serde_json::json!([0, 0, 0, 0, 1, 1, 1, 1])
    );
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["tokenize", model, "--pair"])
        .stdin(std::fs::File::open(reference().join("minilm/sentences.json")).unwrap())
        .output()
        .unwrap();
    assert_clean_failure(&out, "a line without a tab under --pair");
}

#[test]
fn bench_runs_a_given_model_and_reports_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let model = convert_tiny("bert_model", dir.path(), "int8");
    let args = [
        "bench",
        "--model",
        &model,
        "--workload",
        "M1,m2",
        "--threads",
        "1,2",
        "--runs",
        "3",
        "--min-time",
        "0",
        "--json",
    ];
    let out = berth(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 4, "two workloads x two thread counts");
    for r in records {
        let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
        assert_eq!(r["dtype"], "int8");
        assert_eq!(
            (&r["attention"], &r["act_groups"]),
            (&"f32".into(), &"128/64".into())
        );
        assert!(f("runs") >= 3.0);
        assert!(f("min_ms") <= f("p10_ms") && f("p10_ms") <= f("median_ms"));
        assert!(f("median_ms") <= f("p90_ms") && f("median_ms") > 0.0);
        assert!(f("gflops") > 0.0 && f("cold_start_ms") > 0.0);
        // The weights' traffic: the tiny model's int8 panels, over the time of a pass, set
        // against the measured read bandwidth.
        assert!(f("weight_mb") > 0.0 && f("read_gbps") > 0.0);
        let rate = f("weight_mb") / 1e3 / (f("median_ms") / 1e3);
        assert!((f("weight_gbps") - rate).abs() <= 1e-9 * rate);
        assert!((f("bandwidth_fraction") - rate / f("read_gbps")).abs() <= 1e-9 * rate);
        if cfg!(target_os = "linux") {
            assert!(f("peak_rss_mb") > 0.0);
        }
    }
    let m2 = &records[2];
    assert_eq!(
        (m2["workload"].as_str(), m2["threads"].as_u64()),
        (Some("M2"), Some(1))
    );
    // 32 sequences of 10..=128 tokens, padded to 128.
    assert_eq!(m2["padded_tokens"], 32 * 128);
    assert_eq!(m2["real_tokens"], 2131);

    // bf16 attention and another activation grouping, as the records say.
    let extra = ["--bf16-attention", "--act-groups", "row/32", "--json"];
    let out = bench_m1(&model, &extra);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &records[0];
    assert_eq!(
        (&r["attention"], &r["act_groups"]),
        (&"bf16".into(), &"row/32".into())
    );

    // With --dtype bf16, an f32 file runs as it is, then with its linear layers in bf16; an
    // int8 file has none to run in bf16, and a bf16 file runs so already.
    let f32_model = convert_tiny("bert_model", dir.path(), "f32");
    let bf16_model = convert_tiny("bert_model", dir.path(), "bf16");
    for (file, want) in [
        (&f32_model, &["f32", "bf16"][..]),
        (&model, &["int8"][..]),
        (&bf16_model, &["bf16"][..]),
    ] {
        let out = bench_m1(file, &["--dtype", "bf16", "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let records = records.as_array().unwrap();
        let dtypes: Vec<&str> = records
            .iter()
            .map(|r| r["dtype"].as_str().unwrap())
            .collect();
        assert_eq!(dtypes, want);
        assert!(records.iter().all(|r| r["bf16_kernel"].is_string()));
    }

    // The table form has a header and one row per record.
    let table = bench_m1(&model, &[]);
    assert!(table.status.success(), "{}", text(&table.stderr));
    let t = text(&table.stdout);
    assert!(t.starts_with("load") && t.lines().count() == 2, "{t}");

    // The inputs the peers script reads: the same windows.
    let inputs = dir.path().join("inputs.json");
    let out = berth(&[
        "bench",
        "--model",
        &model,
        "--workload",
        "M2",
        "--export-inputs",
        inputs.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&inputs).unwrap()).unwrap();
    let seqs = v["workloads"][0]["sequences"].as_array().unwrap();
    let total: usize = seqs.iter().map(|s| s.as_array().unwrap().len()).sum();
    assert_eq!((seqs.len(), total), (32, 2131));
}

#[test]
fn bench_refuses_what_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = convert_tiny("bert_model", dir.path(), "f32");
    // The tiny model has 128 positions; B2 needs 512.
    let out = berth(&[
        "bench",
        "--model",
        &model,
        "--workload",
        "B2",
        "--runs",
        "1",
    ]);
    assert_clean_failure(&out, "B2 on a 128-position model");
    assert!(
        text(&out.stderr).contains("512 positions"),
        "{}",
        text(&out.stderr)
    );
    for bad in [
        vec!["--workload", "M9"],
        vec!["--threads", "0"],
        vec!["--min-time=-1"],
        vec!["--act-groups", "6/8", "--workload", "M1", "--runs", "1"],
    ] {
        let mut args = vec!["bench", "--model", &model];
        args.extend(bad.iter().copied());
        let out = berth(&args);
        assert_clean_failure(&out, &format!("{bad:?}"));
    }
    // A malformed grouping is a usage error (clap's exit code 2), named in the message.
    let out = berth(&["bench", "--model", &model, "--act-groups", "128"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("HIDDEN/INTERMEDIATE"),
        "{err}"
    );
}

/// int8 conversion smooths the encoder's linear layers when the checkpoint has a tokenizer to
/// calibrate with (here the tiny model with the first 512 entries of MiniLM's vocabulary),
/// storing one input scale per linear layer; `--no-smoothing` stores none.
#[test]
fn int8_conversion_smooths_with_a_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("tiny");
    support::copy_dir(&reference().join("tiny/bert_model"), &src);
    let vocab = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tokenizer/vocab.txt"),
    )
    .unwrap();
    let lines: Vec<&str> = vocab.lines().take(512).collect();
    std::fs::write(src.join("vocab.txt"), lines.join("\n") + "\n").unwrap();
    let scales = |extra: &[&str]| {
        let out_path = dir.path().join("t.berth");
        let mut args = vec![
            "convert",
            src.to_str().unwrap(),
            "-o",
            out_path.to_str().unwrap(),
            "--dtype",
            "int8",
        ];
        args.extend(extra);
        let out = berth(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let report = text(&out.stdout);
        let out = berth(&["inspect", out_path.to_str().unwrap(), "--verify", "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let names: Vec<String> = v["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .filter(|n| n.ends_with(".input_scale"))
            .collect();
        (names, report)
    };
    let (names, report) = scales(&[]);
    // 2 layers x (query, key, value, attention output, up, down).
    assert_eq!(names.len(), 12, "{names:?}");
    assert!(names.contains(&"encoder.layer.1.output.dense.input_scale".to_owned()));
    assert!(report.contains("smoothed"), "{report}");
    let (names, report) = scales(&["--no-smoothing"]);
    assert!(names.is_empty(), "{names:?}");
    assert!(!report.contains("smoothed"), "{report}");
}

#[test]
fn embed_prints_what_the_library_computes() {
    let (_dir, path) = support::convert_minilm(berth_tools::convert::OutDtype::F32);
    let path = path.to_str().unwrap();
    let model = berth::Model::load(path).unwrap();
    let texts = ["The cat sits on the mat.", "", "Ünïcödé and emoji 🚀"];
    let want = model.embed(&texts).unwrap();
    let check = |stdout: &[u8], context: &str| {
        let lines: Vec<serde_json::Value> = text(stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), texts.len(), "{context}");
        for (i, v) in lines.iter().enumerate() {
            let got: Vec<f32> = v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(got, want.get(i).unwrap(), "{context}: text {i}");
            assert_eq!(v["truncated"], false, "{context}");
        }
    };
    // Texts as arguments, in batches of 2.
    let mut args = vec!["embed", path, "--batch", "2", "--threads", "1"];
    args.extend(texts);
    let out = berth(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    check(&out.stdout, "arguments");
    // The same texts as JSON lines on stdin.
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["embed", path, "--jsonl"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = texts
        .iter()
        .map(|t| serde_json::to_string(t).unwrap() + "\n")
        .collect();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    check(&out.stdout, "stdin");
    // Bad options and bad files: one line, exit 1.
    assert_clean_failure(&berth(&["embed", path, "--threads", "0", "x"]), "threads 0");
    assert_clean_failure(&berth(&["embed", "/nonexistent.berth", "x"]), "no file");
}
