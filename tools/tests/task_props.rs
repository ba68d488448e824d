//! Every task on generated text (the tiny task models, fixtures/pipelines' tokenizers): no
//! panic, one result per input, and every span a byte range of the input on character
//! boundaries (a QA answer is exactly `context[start..end]`).

mod support;

use std::sync::OnceLock;

use berth::{Aggregation, Model, QaOptions};
use berth_tools::convert::OutDtype;
use proptest::prelude::*;

struct Models {
    _dir: tempfile::TempDir,
    clf: Model,
    ner: Model,
    qa: Model,
    mlm: Model,
}

fn models() -> &'static Models {
    static M: OnceLock<Models> = OnceLock::new();
    M.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let load = |task: &str| {
            let o = berth::ModelOptions::default().threads(1);
            let path = support::tiny_task(task, task, OutDtype::F32, dir.path());
            Model::load_with(path, o).unwrap()
        };
        Models {
            clf: load("sequence_classification"),
            ner: load("token_classification"),
            qa: load("question_answering"),
            mlm: load("masked_lm"),
            _dir: dir,
        }
    })
}

use support::text;

fn span_ok(text: &str, start: usize, end: usize) -> bool {
    start <= end && text.get(start..end).is_some()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tasks_never_panic_and_spans_lie_in_the_input(
        a in text(),
        b in text(),
        agg in 0usize..5,
        top_k in 1usize..6,
        max_seq_len in 8usize..80,
        stride in 0usize..40,
        max_answer_len in 1usize..20,
    ) {
        let m = models();
        let texts = [a.as_str(), b.as_str()];
        prop_assert_eq!(m.clf.classify(&texts).unwrap().len(), 2);
        prop_assert_eq!(m.clf.classify_pairs(&[(&a, &b), (&b, &a)]).unwrap().len(), 2);
        prop_assert!(m.clf.rerank(&a, &texts, Some(top_k)).unwrap().len() <= top_k);
        let aggs = [Aggregation::None, Aggregation::Simple, Aggregation::First, Aggregation::Average, Aggregation::Max];
        let tags = m.ner.tag(&texts, aggs[agg]).unwrap();
        prop_assert_eq!(tags.len(), 2);
        for (t, text) in tags.iter().zip(texts) {
            for e in &t.entities {
                prop_assert!(span_ok(text, e.start, e.end), "{:?} in {:?}", e, text);
                prop_assert!(e.score.is_finite());
            }
        }
        let opts = QaOptions {
            top_k,
            doc_stride: Some(stride),
            max_answer_len,
            max_seq_len: Some(max_seq_len),
            handle_impossible_answer: agg == 0,
        };
        // A stride that leaves no room is a typed error; anything else answers.
        match m.qa.answer(&a, &b, &opts) {
            Ok(answers) => {
                prop_assert!(answers.len() <= top_k);
                for x in &answers {
                    prop_assert!(span_ok(&b, x.start, x.end));
                    prop_assert_eq!(&b[x.start..x.end], x.answer.as_str());
                }
            }
            Err(berth::Error::BadOption { .. }) => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
        match m.mlm.fill_mask(&texts, top_k) {
            Ok(f) => {
                prop_assert_eq!(f.len(), 2);
                for x in &f {
                    prop_assert!(x.masks.iter().all(|m| m.len() == top_k));
                }
            }
            Err(berth::Error::NoMask { .. }) => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
    }
}
