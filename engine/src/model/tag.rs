//! Token classification (NER), as transformers' token-classification pipeline computes it,
//! aggregation strategies included.

use std::borrow::Cow;

use super::classify::softmax;
use super::{Model, Scratch};
use crate::config::Head;
use crate::Error;

/// How [`Model::tag`] merges tokens into entities: the pipeline's `aggregation_strategy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Aggregation {
    /// One entity per token (with its `index`), labels as the model has them.
    #[default]
    None,
    /// Adjacent tokens with the same tag (`B-X` starts a new group) form one entity group.
    Simple,
    /// Each word takes its first token's label, then words group as `Simple`.
    First,
    /// Each word takes the label of its tokens' mean scores.
    Average,
    /// Each word takes the label of its most confident token.
    Max,
}

impl Aggregation {
    /// Parses `none`, `simple`, `first`, `average` or `max`.
    pub fn parse(s: &str) -> Option<Aggregation> {
        match s {
            "none" => Some(Aggregation::None),
            "simple" => Some(Aggregation::Simple),
            "first" => Some(Aggregation::First),
            "average" => Some(Aggregation::Average),
            "max" => Some(Aggregation::Max),
            _ => None,
        }
    }
}

/// One entity: the pipeline's `entity` (or `entity_group`), `score`, `word`, `start`, `end`
/// and, without aggregation, `index`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    /// The label (`Aggregation::None`), or the group's tag without its `B-`/`I-` prefix.
    pub label: String,
    pub score: f32,
    /// The entity's text as the tokenizer's decoder joins its tokens (lowercased by an
    /// uncased model; the input's own text is `text[start..end]`).
    pub word: String,
    /// Byte offsets into the input text.
    pub start: usize,
    pub end: usize,
    /// The token's position in the sequence, `[CLS]` being 0 (`Aggregation::None` only).
    pub index: Option<usize>,
}

/// A text's entities, in text order; tokens labelled `O` are left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Tags {
    pub entities: Vec<Entity>,
    /// Whether the text was cut to the maximum sequence length.
    pub truncated: bool,
}

/// A token (or word) before grouping: a token's text is borrowed (the vocabulary's, or the
/// input's for an unknown token); only a merged word owns its joined text.
struct Pre<'t> {
    label: usize,
    score: f32,
    word: Cow<'t, str>,
    start: usize,
    end: usize,
    index: usize,
    /// Whether the token continues the previous one's word (the pipeline's `is_subword`).
    subword: bool,
}

impl Model {
    /// Labels the tokens of each text with a token-classification model and merges them as
    /// `aggregation` says.
    ///
    /// ```no_run
    /// use berth::Aggregation;
    ///
    /// let model = berth::Model::load("bert-base-NER.berth")?;
    /// let text = "Ada Lovelace was born in London.";
    /// for e in &model.tag(&[text], Aggregation::Simple)?[0].entities {
    ///     println!("{} {:.3} {:?}", e.label, e.score, &text[e.start..e.end]);
    /// }
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn tag(&self, texts: &[&str], aggregation: Aggregation) -> Result<Vec<Tags>, Error> {
        self.need("tag", Head::TokenClassification)?;
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let labels = &self.config().labels;
        let n = labels.len();
        let unk = self.tokenizer.unk_id();
        self.with_scratch(|s| {
            self.stage_texts(texts, s)?;
            let Scratch {
                rows, pass, probs, ..
            } = s;
            let mut result = Vec::with_capacity(rows.len());
            // Working lists for one row at a time, reused by the next.
            let mut tokens: Vec<Pre> = Vec::new();
            let mut words: Vec<Pre> = Vec::new();
            let mut mean = vec![0.0f32; n];
            self.run_rows(rows, pass, |row, b, seq, out| {
                let text = texts[row];
                let logits = out.logits.as_ref().map_or(&[][..], |t| &t.data[..]);
                let range = rows.range(row);
                // Each real token's scores, then the pipeline's "pre-entities".
                tokens.clear();
                probs.clear();
                for (p, i) in range.clone().enumerate() {
                    if rows.special[i] != 0 {
                        continue;
                    }
                    let at = (b * seq + p) * n;
                    let scores = logits.get(at..at + n).unwrap_or(&[]);
                    let from = probs.len();
                    probs.extend_from_slice(scores);
                    softmax(&mut probs[from..]);
                    let (start, end) = rows.offsets[i];
                    let reference = text.get(start..end).unwrap_or("");
                    let id = rows.ids[i];
                    let token = self.tokenizer.token(id).unwrap_or("");
                    // transformers' test for a subword: the token's length differs from its
                    // text's (`##` pieces; also, quirk included, accents the normaliser
                    // folded). An unknown token stands for its text.
                    let (word, subword) = match id == unk {
                        true => (reference, false),
                        false => (token, token.chars().count() != reference.chars().count()),
                    };
                    let (label, score) = argmax(&probs[from..]);
                    tokens.push(Pre {
                        label,
                        score,
                        word: Cow::Borrowed(word),
                        start,
                        end,
                        index: p,
                        subword,
                    });
                }
                let entities = match aggregation {
                    Aggregation::None => tokens
                        .iter()
                        .filter(|t| labels[t.label] != "O")
                        .map(|t| Entity {
                            label: labels[t.label].clone(),
                            score: t.score,
                            word: t.word.clone().into_owned(),
                            start: t.start,
                            end: t.end,
                            index: Some(t.index),
                        })
                        .collect(),
                    Aggregation::Simple => self.group(&tokens, labels),
                    _ => {
                        self.words(&tokens, probs, aggregation, &mut mean, &mut words);
                        self.group(&words, labels)
                    }
                };
                result.push(Tags {
                    entities,
                    truncated: rows.truncated[row],
                });
                Ok(())
            })?;
            Ok(result)
        })
    }

    /// Merges each word's tokens (a token and the subwords after it) into one, labelled as
    /// `aggregation` says, into `words`. `probs` holds the tokens' scores back to back, `n`
    /// (`mean.len()`) each.
    fn words<'t>(
        &self,
        tokens: &[Pre<'t>],
        probs: &[f32],
        aggregation: Aggregation,
        mean: &mut [f32],
        words: &mut Vec<Pre<'t>>,
    ) {
        let n = mean.len();
        words.clear();
        let mut i = 0;
        while i < tokens.len() {
            let mut j = i + 1;
            while j < tokens.len() && tokens[j].subword {
                j += 1;
            }
            let scores = |k: usize| &probs[k * n..(k + 1) * n];
            let (label, score) = match aggregation {
                Aggregation::First => argmax(scores(i)),
                Aggregation::Max => {
                    // The first token whose best score is the highest.
                    let mut best = i;
                    for k in i + 1..j {
                        if max(scores(k)) > max(scores(best)) {
                            best = k;
                        }
                    }
                    argmax(scores(best))
                }
                _ => {
                    mean.fill(0.0);
                    for k in i..j {
                        for (m, &v) in mean.iter_mut().zip(scores(k)) {
                            *m += v;
                        }
                    }
                    let count = (j - i) as f32;
                    mean.iter_mut().for_each(|m| *m /= count);
                    argmax(mean)
                }
            };
            words.push(Pre {
                label,
                score,
                word: Cow::Owned(
                    self.tokenizer
                        .join_tokens(tokens[i..j].iter().map(|t| t.word.as_ref())),
                ),
                start: tokens[i].start,
                end: tokens[j - 1].end,
                index: tokens[i].index,
                subword: false,
            });
            i = j;
        }
    }

    /// The pipeline's `group_entities`: runs of the same tag, a `B-` starting a new run,
    /// become one entity with the mean score; `O` groups are left out.
    fn group(&self, items: &[Pre], labels: &[String]) -> Vec<Entity> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < items.len() {
            let (_, tag) = bio(&labels[items[i].label]);
            let mut j = i + 1;
            while j < items.len() {
                let (bi, t) = bio(&labels[items[j].label]);
                if t != tag || bi == "B" {
                    break;
                }
                j += 1;
            }
            let run = &items[i..j];
            let name = labels[run[0].label]
                .split_once('-')
                .map_or(labels[run[0].label].as_str(), |(_, rest)| rest);
            if name != "O" {
                out.push(Entity {
                    label: name.to_owned(),
                    score: run.iter().map(|p| p.score).sum::<f32>() / run.len() as f32,
                    word: self
                        .tokenizer
                        .join_tokens(run.iter().map(|p| p.word.as_ref())),
                    start: run[0].start,
                    end: run[run.len() - 1].end,
                    index: None,
                });
            }
            i = j;
        }
        out
    }
}

/// The pipeline's `get_tag`: `B-X` is ("B", "X"), `I-X` is ("I", "X"), anything else is an
/// inside tag of its own name.
fn bio(label: &str) -> (&str, &str) {
    if let Some(t) = label.strip_prefix("B-") {
        ("B", t)
    } else if let Some(t) = label.strip_prefix("I-") {
        ("I", t)
    } else {
        ("I", label)
    }
}

/// The first index of the largest value, and the value (numpy's `argmax`).
fn argmax(v: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &x) in v.iter().enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best
}

fn max(v: &[f32]) -> f32 {
    argmax(v).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bio_splits_like_the_pipeline() {
        assert_eq!(bio("B-PER"), ("B", "PER"));
        assert_eq!(bio("I-LOC"), ("I", "LOC"));
        assert_eq!(bio("O"), ("I", "O"));
        assert_eq!(bio("LABEL_3"), ("I", "LABEL_3"));
    }

    #[test]
    fn argmax_takes_the_first_of_equals() {
        assert_eq!(argmax(&[0.1, 0.4, 0.4, 0.1]), (1, 0.4));
        assert_eq!(argmax(&[]), (0, f32::NEG_INFINITY));
    }
}
