//! One `Model` shared by 8 threads, 1,000 calls each, gives every call the result one thread
//! gets, for every task (embed, classify, classify_pairs, tag, answer, fill_mask) on the tiny
//! task models.

mod support;

use std::fmt::Debug;
use std::path::Path;

use berth::{Aggregation, Model, QaOptions};

const THREADS: usize = 8;
const CALLS: usize = 1000;

fn tiny(task: &str, weights: &str, dir: &Path) -> std::path::PathBuf {
    support::tiny_task(task, weights, berth_tools::convert::OutDtype::F32, dir)
}

const TEXTS: [&str; 6] = [
    "The quick brown fox jumps over the lazy dog.",
    "Ada Lovelace lived in London [MASK].",
    "[MASK]",
    "Zürich 🙂 東京 and a very long word: antidisestablishmentarianism [MASK] [MASK].",
    "x [MASK]",
    "Short [MASK] text.",
];

/// Runs `call(i)` for i in 0..CALLS on each of THREADS threads at once and checks each result
/// against `want[i % want.len()]`, computed first on one thread.
fn hammer<T: PartialEq + Debug + Send + Sync>(
    name: &str,
    model: &Model,
    inputs: usize,
    call: impl Fn(&Model, usize) -> T + Sync,
) {
    let want: Vec<T> = (0..inputs).map(|i| call(model, i)).collect();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (want, call) = (&want, &call);
            s.spawn(move || {
                for c in 0..CALLS {
                    // Each thread walks the inputs from its own place.
                    let i = (c + t) % inputs;
                    assert_eq!(call(model, i), want[i], "{name}: thread {t} call {c}");
                }
            });
        }
    });
}

#[test]
fn eight_threads_sharing_a_model_get_one_threads_results() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Batches of 1 to 3 texts, starting anywhere, so calls differ in size.
    let batch = |i: usize| -> Vec<&str> {
        (0..1 + i % 3)
            .map(|k| TEXTS[(i + k) % TEXTS.len()])
            .collect()
    };
    let n = TEXTS.len() * 3;

    let encoder = Model::load(tiny("masked_lm", "bert_model", d)).unwrap();
    hammer("embed", &encoder, n, |m, i| m.embed(&batch(i)).unwrap());

    let clf = Model::load(tiny(
        "sequence_classification",
        "sequence_classification",
        d,
    ))
    .unwrap();
    hammer("classify", &clf, n, |m, i| m.classify(&batch(i)).unwrap());
    hammer("classify_pairs", &clf, n, |m, i| {
        let b = batch(i);
        let pairs: Vec<(&str, &str)> = b.iter().map(|t| (*t, TEXTS[i % TEXTS.len()])).collect();
        m.classify_pairs(&pairs).unwrap()
    });

    let ner = Model::load(tiny("token_classification", "token_classification", d)).unwrap();
    let aggs = [
        Aggregation::None,
        Aggregation::Simple,
        Aggregation::First,
        Aggregation::Average,
        Aggregation::Max,
    ];
    hammer("tag", &ner, n, |m, i| {
        m.tag(&batch(i), aggs[i % aggs.len()]).unwrap()
    });

    let qa = Model::load(tiny("question_answering", "question_answering", d)).unwrap();
    let context = TEXTS.join(" ").repeat(4);
    let questions = ["Who?", "Where did she live?", "What is it?", "Why not?"];
    hammer("answer", &qa, questions.len(), |m, i| {
        let opts = QaOptions {
            top_k: 1 + i % 3,
            max_seq_len: Some(48 + 8 * i),
            doc_stride: Some(4 + i),
            ..QaOptions::default()
        };
        m.answer(questions[i], &context, &opts).unwrap()
    });

    let mlm = Model::load(tiny("masked_lm", "masked_lm", d)).unwrap();
    hammer("fill_mask", &mlm, TEXTS.len() - 1, |m, i| {
        m.fill_mask(&[TEXTS[i + 1]], 1 + i % 4).unwrap()
    });
}
