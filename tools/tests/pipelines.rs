//! berth's task methods against transformers' pipelines (fixtures/pipelines, made by
//! scripts/make-pipeline-fixtures.py) on the tiny task models, converted at f32: the same
//! labels, tokens, words and byte spans in the same order, scores within 1e-4.

mod support;

use berth::{Aggregation, Model, ModelOptions, QaOptions};
use berth_tools::convert::OutDtype;
use serde_json::Value;

const TOL: f64 = 1e-4;

/// The tiny `weights` model with fixtures/pipelines/`task`'s config and tokenizer, converted
/// at `dtype`, and the expected outputs.
fn model_at(task: &str, weights: &str, dtype: OutDtype, options: ModelOptions) -> (Model, Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = support::tiny_task(task, weights, dtype, dir.path());
    let model = Model::load_with(&path, options).unwrap();
    let expected = std::fs::read(support::pipelines().join(task).join("expected.json")).unwrap();
    (model, serde_json::from_slice(&expected).unwrap())
}

fn model(task: &str, weights: &str) -> (Model, Value) {
    model_at(task, weights, OutDtype::F32, ModelOptions::default())
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn u(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(s).collect()
}

thread_local! {
    /// The largest score difference a test has seen, for its report.
    static WORST: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
}

fn close(what: &str, got: f32, want: &Value) {
    let d = (f64::from(got) - f(want)).abs();
    WORST.with(|w| w.set(w.get().max(d)));
    assert!(
        d <= TOL,
        "{what}: score {got} vs {want} (|diff| {d:.2e} > {TOL:e})"
    );
}

/// Prints the largest score difference seen on this thread (the test's).
fn report(test: &str) {
    eprintln!(
        "{test}: largest |score diff| {:.2e}",
        WORST.with(|w| w.get())
    );
}

#[test]
fn text_classification_matches_the_pipeline() {
    for task in ["sequence_classification", "sequence_classification_multi"] {
        let (m, exp) = model(task, "sequence_classification");
        let texts = strs(&exp["texts"]);
        let got = m.classify(&texts).unwrap();
        for (i, (c, want)) in got.iter().zip(exp["all"].as_array().unwrap()).enumerate() {
            let want = want.as_array().unwrap();
            assert_eq!(c.labels.len(), want.len(), "{task} text {i}");
            for (l, w) in c.labels.iter().zip(want) {
                assert_eq!(l.label, s(&w["label"]), "{task} text {i}");
                close(
                    &format!("{task} text {i} {}", l.label),
                    l.score,
                    &w["score"],
                );
            }
            assert_eq!(c.top().unwrap().label, s(&exp["top1"][i][0]["label"]));
        }
        let pairs: Vec<(&str, &str)> = exp["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (s(&p[0]), s(&p[1])))
            .collect();
        let got = m.classify_pairs(&pairs).unwrap();
        for (i, (c, want)) in got
            .iter()
            .zip(exp["pairs_all"].as_array().unwrap())
            .enumerate()
        {
            for (l, w) in c.labels.iter().zip(want.as_array().unwrap()) {
                assert_eq!(l.label, s(&w["label"]), "{task} pair {i}");
                close(&format!("{task} pair {i}"), l.score, &w["score"]);
            }
        }
        // A reranker's score is the last label's probability under the default function.
        let query = pairs[0].0;
        let docs: Vec<&str> = pairs.iter().map(|p| p.1).collect();
        let ranked = m.rerank(query, &docs, Some(2)).unwrap();
        assert_eq!(ranked.len(), 2);
        let direct = m
            .classify_pairs(&docs.iter().map(|d| (query, *d)).collect::<Vec<_>>())
            .unwrap();
        let last = |c: &berth::Classification| c.labels.iter().find(|l| l.id == 2).unwrap().score;
        let mut want: Vec<(usize, f32)> = direct.iter().map(last).enumerate().collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (r, w) in ranked.iter().zip(&want) {
            assert_eq!((r.index, r.score), *w);
        }
    }
    report("text_classification");
}

#[test]
fn token_classification_matches_the_pipeline_for_every_aggregation() {
    let (m, exp) = model("token_classification", "token_classification");
    let texts = strs(&exp["texts"]);
    for (name, agg) in [
        ("none", Aggregation::None),
        ("simple", Aggregation::Simple),
        ("first", Aggregation::First),
        ("average", Aggregation::Average),
        ("max", Aggregation::Max),
    ] {
        let got = m.tag(&texts, agg).unwrap();
        for (i, (tags, want)) in got.iter().zip(exp[name].as_array().unwrap()).enumerate() {
            let want = want.as_array().unwrap();
            let what = format!("{name} text {i} {:?}", texts[i]);
            let ours: Vec<_> = tags
                .entities
                .iter()
                .map(|e| (&e.label, &e.word, e.start, e.end))
                .collect();
            assert_eq!(tags.entities.len(), want.len(), "{what}: {ours:?}");
            for (e, w) in tags.entities.iter().zip(want) {
                let key = if agg == Aggregation::None {
                    "entity"
                } else {
                    "entity_group"
                };
                assert_eq!(e.label, s(&w[key]), "{what}");
                assert_eq!(e.word, s(&w["word"]), "{what}");
                assert_eq!(
                    (e.start, e.end),
                    (u(&w["start"]), u(&w["end"])),
                    "{what} {}",
                    e.word
                );
                assert_eq!(e.index, w.get("index").map(u), "{what}");
                close(&what, e.score, &w["score"]);
            }
        }
    }
    report("token_classification");
}

#[test]
fn fill_mask_matches_the_pipeline() {
    let (m, exp) = model("masked_lm", "masked_lm");
    let texts = strs(&exp["texts"]);
    for (key, k) in [("top5", 5), ("top3", 3)] {
        let got = m.fill_mask(&texts, k).unwrap();
        for (i, (fm, want)) in got.iter().zip(exp[key].as_array().unwrap()).enumerate() {
            let want = want.as_array().unwrap();
            assert_eq!(fm.masks.len(), want.len(), "{key} text {i}");
            for (mask, w) in fm.masks.iter().zip(want) {
                let w = w.as_array().unwrap();
                assert_eq!(mask.len(), w.len());
                for (fill, w) in mask.iter().zip(w) {
                    let what = format!("{key} text {i}");
                    assert_eq!(fill.token as usize, u(&w["token"]), "{what}");
                    assert_eq!(fill.token_str, s(&w["token_str"]), "{what}");
                    assert_eq!(fill.sequence, s(&w["sequence"]), "{what}");
                    close(&what, fill.score, &w["score"]);
                }
            }
        }
    }
    report("fill_mask");
}

#[test]
fn question_answering_matches_the_pipeline() {
    let (m, exp) = model("question_answering", "question_answering");
    for (i, case) in exp["cases"].as_array().unwrap().iter().enumerate() {
        let o = &case["options"];
        let opts = QaOptions {
            top_k: o.get("top_k").map_or(1, u),
            doc_stride: o.get("doc_stride").map(u),
            max_answer_len: o.get("max_answer_len").map_or(15, u),
            max_seq_len: o.get("max_seq_len").map(u),
            handle_impossible_answer: o
                .get("handle_impossible_answer")
                .is_some_and(|v| v.as_bool().unwrap()),
        };
        let got = m
            .answer(s(&case["question"]), s(&case["context"]), &opts)
            .unwrap();
        let want = case["answers"].as_array().unwrap();
        let ours: Vec<_> = got.iter().map(|a| (&a.answer, a.start, a.score)).collect();
        assert_eq!(got.len(), want.len(), "case {i}: {ours:?}");
        for (a, w) in got.iter().zip(want) {
            assert_eq!(a.answer, s(&w["answer"]), "case {i}: {ours:?}");
            assert_eq!((a.start, a.end), (u(&w["start"]), u(&w["end"])), "case {i}");
            close(&format!("case {i}"), a.score, &w["score"]);
        }
    }
    report("question_answering");
}
