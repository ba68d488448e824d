//! Sequence classification, cross-encoder pairs and reranking, as transformers'
//! text-classification pipeline and sentence-transformers' `CrossEncoder.rank` compute them.

use super::{Model, Scratch};
use crate::config::{Head, ProblemType};
use crate::Error;

/// How logits become scores: transformers' `function_to_apply`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreFn {
    /// `exp(x_i) / sum exp(x)`: one label of many.
    Softmax,
    /// `1 / (1 + exp(-x_i))`: labels independent of each other.
    Sigmoid,
    /// The raw logits (regression).
    None,
}

impl ScoreFn {
    /// Parses `softmax`, `sigmoid` or `none`.
    pub fn parse(s: &str) -> Option<ScoreFn> {
        match s {
            "softmax" => Some(ScoreFn::Softmax),
            "sigmoid" => Some(ScoreFn::Sigmoid),
            "none" => Some(ScoreFn::None),
            _ => None,
        }
    }

    /// Applies the function to `logits` in place.
    pub fn apply(self, logits: &mut [f32]) {
        match self {
            ScoreFn::Softmax => softmax(logits),
            ScoreFn::Sigmoid => logits.iter_mut().for_each(|x| *x = sigmoid(*x)),
            ScoreFn::None => {}
        }
    }
}

/// `exp(x - max) / sum`, in place, as the pipelines' numpy softmax.
pub(super) fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// One label and its score.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// The label's name (`id2label`).
    pub label: String,
    /// Its index in the model's outputs.
    pub id: usize,
    pub score: f32,
}

/// A text's (or pair's) scores for every label, best first (ties in label order), as the
/// pipeline with `top_k=None` returns them.
#[derive(Clone, Debug, PartialEq)]
pub struct Classification {
    pub labels: Vec<Label>,
    /// Whether the input was cut to the maximum sequence length.
    pub truncated: bool,
}

impl Classification {
    /// The best label.
    pub fn top(&self) -> Option<&Label> {
        self.labels.first()
    }
}

/// One document's place in a [`Model::rerank`] result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ranked {
    /// The document's index in the input.
    pub index: usize,
    pub score: f32,
    /// Whether the query and document were cut to the maximum sequence length.
    pub truncated: bool,
}

impl Model {
    /// How [`Model::classify`] turns logits into scores by default, as the pipeline decides:
    /// none for regression, sigmoid for multi-label problems and single-logit models, else
    /// softmax.
    pub fn score_fn(&self) -> ScoreFn {
        let cfg = self.config();
        match cfg.problem_type {
            ProblemType::Regression => ScoreFn::None,
            ProblemType::MultiLabel => ScoreFn::Sigmoid,
            _ if cfg.labels.len() == 1 => ScoreFn::Sigmoid,
            _ => ScoreFn::Softmax,
        }
    }

    /// Classifies each text with a sequence-classification model: every label with its score
    /// ([`Model::score_fn`]), best first.
    ///
    /// ```no_run
    /// let model = berth::Model::load("sentiment.berth")?;
    /// for c in model.classify(&["I love it.", "Not my thing."])? {
    ///     let top = c.top().expect("a model has labels");
    ///     println!("{} {:.3}", top.label, top.score);
    /// }
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn classify(&self, texts: &[&str]) -> Result<Vec<Classification>, Error> {
        self.classify_with(texts, self.score_fn())
    }

    /// [`Model::classify`] with the given score function.
    pub fn classify_with(
        &self,
        texts: &[&str],
        function: ScoreFn,
    ) -> Result<Vec<Classification>, Error> {
        self.need("classify", Head::SequenceClassification)?;
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.with_scratch(|s| {
            self.stage_texts(texts, s)?;
            self.classify_rows(s, function)
        })
    }

    /// Classifies text pairs (`[CLS] a [SEP] b [SEP]`): cross-encoders, natural-language
    /// inference, rerankers. Pairs longer than the maximum are cut longest-first.
    ///
    /// ```no_run
    /// let model = berth::Model::load("nli.berth")?;
    /// let c = model.classify_pairs(&[("A man eats.", "Someone is eating.")])?;
    /// println!("{:?}", c[0].top());
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn classify_pairs(&self, pairs: &[(&str, &str)]) -> Result<Vec<Classification>, Error> {
        self.classify_pairs_with(pairs, self.score_fn())
    }

    /// [`Model::classify_pairs`] with the given score function.
    pub fn classify_pairs_with(
        &self,
        pairs: &[(&str, &str)],
        function: ScoreFn,
    ) -> Result<Vec<Classification>, Error> {
        self.need("classify_pairs", Head::SequenceClassification)?;
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        self.with_scratch(|s| {
            self.stage_pairs(pairs.iter().copied(), s)?;
            self.classify_rows(s, function)
        })
    }

    /// Ranks `documents` by relevance to `query`, best first, and keeps the `top_k` best
    /// (all with `None`). A cross-encoder (sequence classification) scores each
    /// `(query, document)` pair with its last label's score under [`Model::score_fn`]: the
    /// sigmoid of the logit for a one-label model, as sentence-transformers'
    /// `CrossEncoder.rank`; the probability of the last ("relevant") label for a two-label
    /// one. An embedding model scores the cosine similarity of the embeddings
    /// (sentence-transformers' `semantic_search`). Ties keep input order.
    ///
    /// ```no_run
    /// let model = berth::Model::load("ms-marco-MiniLM-L-6-v2.berth")?;
    /// let docs = ["Berlin is the capital of Germany.", "Pandas eat bamboo."];
    /// for r in model.rerank("What is Germany's capital?", &docs, Some(1))? {
    ///     println!("{:.3} {}", r.score, docs[r.index]);
    /// }
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn rerank(
        &self,
        query: &str,
        documents: &[&str],
        top_k: Option<usize>,
    ) -> Result<Vec<Ranked>, Error> {
        let mut ranked = match self.config().head {
            Head::SequenceClassification => {
                if documents.is_empty() {
                    return Ok(Vec::new());
                }
                let pairs = documents.iter().map(|d| (query, *d));
                self.with_scratch(|s| {
                    self.stage_pairs(pairs, s)?;
                    self.classify_rows(s, self.score_fn())
                })?
                .into_iter()
                .enumerate()
                .map(|(index, c)| Ranked {
                    index,
                    // The last label: the one a one-label model has, and "relevant" in the
                    // two-label convention.
                    score: c
                        .labels
                        .iter()
                        .max_by_key(|l| l.id)
                        .map_or(0.0, |l| l.score),
                    truncated: c.truncated,
                })
                .collect::<Vec<_>>()
            }
            Head::None => {
                if documents.is_empty() {
                    return Ok(Vec::new());
                }
                let q = self.embed(&[query])?;
                let d = self.embed(documents)?;
                let qv = q.get(0).unwrap_or(&[]);
                let qn = norm(qv);
                d.iter()
                    .enumerate()
                    .map(|(index, v)| Ranked {
                        index,
                        score: (qv.iter().zip(v).map(|(a, b)| f64::from(*a) * f64::from(*b)))
                            .sum::<f64>() as f32
                            / (qn * norm(v)).max(1e-8),
                        truncated: q.truncated(0) || d.truncated(index),
                    })
                    .collect()
            }
            other => {
                return Err(Error::WrongHead {
                    task: "rerank",
                    needs: "BertForSequenceClassification or BertModel",
                    has: other.architecture(),
                })
            }
        };
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
        ranked.truncate(top_k.unwrap_or(usize::MAX));
        Ok(ranked)
    }

    /// Tokenizes pairs into `s.rows`.
    pub(super) fn stage_pairs<'t>(
        &self,
        pairs: impl Iterator<Item = (&'t str, &'t str)>,
        s: &mut Scratch,
    ) -> Result<(), Error> {
        let opts = self.encode_options();
        s.rows.clear();
        for (a, b) in pairs {
            self.tokenizer.encode_pair_into(a, b, &opts, &mut s.one)?;
            s.rows.push(&s.one);
        }
        Ok(())
    }

    fn classify_rows(
        &self,
        s: &mut Scratch,
        function: ScoreFn,
    ) -> Result<Vec<Classification>, Error> {
        let labels = &self.config().labels;
        let n = labels.len();
        let Scratch {
            rows, pass, probs, ..
        } = s;
        let mut result = Vec::with_capacity(rows.len());
        self.run_rows(rows, pass, |row, b, _, out| {
            let logits = out.logits.as_ref().map_or(&[][..], |t| &t.data[..]);
            probs.clear();
            probs.extend_from_slice(logits.get(b * n..(b + 1) * n).unwrap_or(&[]));
            function.apply(probs);
            let mut ranked: Vec<Label> = labels
                .iter()
                .zip(probs.iter())
                .enumerate()
                .map(|(id, (label, &score))| Label {
                    label: label.clone(),
                    id,
                    score,
                })
                .collect();
            ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
            result.push(Classification {
                labels: ranked,
                truncated: rows.truncated[row],
            });
            Ok(())
        })?;
        Ok(result)
    }
}

fn norm(v: &[f32]) -> f32 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt() as f32
}
