//! Extractive question answering over contexts longer than the model's window, as
//! transformers' question-answering pipeline (4.x; 5.x dropped it) computes it.

use super::{bad_option, Model, Scratch};
use crate::config::Head;
use crate::reference::Tensor;
use crate::tokenizer::{EncodeOptions, Truncation};
use crate::Error;

/// [`Model::answer`]'s settings, named and defaulted as the pipeline's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QaOptions {
    /// How many answers to return, best first (default 1).
    pub top_k: usize,
    /// Tokens each window of the context shares with the one before; `None` is
    /// `min(max_seq_len / 2, 128)`.
    pub doc_stride: Option<usize>,
    /// The most tokens an answer spans (default 15).
    pub max_answer_len: usize,
    /// Tokens per window, question and special tokens included; `None` is
    /// `min(Model::max_seq_len, 384)`.
    pub max_seq_len: Option<usize>,
    /// Also offer the empty answer (start = end = 0), scored by the `[CLS]` token.
    pub handle_impossible_answer: bool,
}

impl Default for QaOptions {
    fn default() -> Self {
        QaOptions {
            top_k: 1,
            doc_stride: None,
            max_answer_len: 15,
            max_seq_len: None,
            handle_impossible_answer: false,
        }
    }
}

/// An answer: the pipeline's `score`, `start`, `end` and `answer`, with `start` and `end`
/// byte offsets into the context.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The product of the start and end probabilities, summed over the spans (in any window)
    /// that give the same text, compared without case.
    pub score: f32,
    pub start: usize,
    pub end: usize,
    /// `context[start..end]`: whole words, from the start token's word to the end token's.
    pub answer: String,
}

impl Model {
    /// Finds the answers to `question` in `context` with a question-answering model. A
    /// context longer than the window is read in overlapping windows (`doc_stride` tokens
    /// shared); each window's best spans are mapped back to whole words of the context.
    ///
    /// Where a window has fewer valid spans than the pipeline looks at (`2 top_k + 10`), the
    /// pipeline may also return zero-scored spans in an order numpy leaves open; berth returns
    /// only the valid ones.
    ///
    /// ```no_run
    /// use berth::QaOptions;
    ///
    /// let model = berth::Model::load("bert-base-squad.berth")?;
    /// let context = "The Eiffel Tower was finished in 1889 for the World's Fair.";
    /// let answers = model.answer("When was the tower finished?", context, &QaOptions::default())?;
    /// if let Some(a) = answers.first() {
    ///     println!("{:.3} {}", a.score, a.answer);
    /// }
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn answer(
        &self,
        question: &str,
        context: &str,
        options: &QaOptions,
    ) -> Result<Vec<Answer>, Error> {
        self.need("answer", Head::QuestionAnswering)?;
        let limit = self.config().max_position_embeddings;
        let max_seq_len = match options.max_seq_len {
            Some(n) if n < 4 || n > limit => {
                return Err(bad_option(format!(
                    "max_seq_len {n}: must be in 4..={limit}"
                )))
            }
            Some(n) => n,
            None => self.max_seq_len.min(384),
        };
        let stride = options.doc_stride.unwrap_or((max_seq_len / 2).min(128));
        if options.top_k == 0 {
            return Err(bad_option("top_k 0: must be at least 1".into()));
        }
        if options.max_answer_len == 0 {
            return Err(bad_option("max_answer_len 0: must be at least 1".into()));
        }
        let whole = EncodeOptions {
            max_length: Some(usize::MAX),
            truncation: Truncation::LongestFirst,
            add_special_tokens: false,
        };
        self.with_scratch(|s| {
            self.tokenizer.encode_into(question, &whole, &mut s.one)?;
            self.tokenizer.encode_into(context, &whole, &mut s.two)?;
            let (q, c) = (s.one.len(), s.two.len());
            let room = max_seq_len.saturating_sub(q + 3);
            if room == 0 || stride >= room {
                return Err(bad_option(format!(
                    "doc_stride {stride} with a question of {q} tokens in max_seq_len \
                     {max_seq_len}: each window has room for {room} context tokens, and the \
                     stride must be smaller"
                )));
            }
            // Windows of the context: [start, end) in context tokens, `room - stride` apart,
            // until one reaches the end (one empty window for an empty context).
            let windows = &mut s.windows;
            windows.clear();
            let mut start = 0;
            loop {
                let end = (start + room).min(c);
                windows.push(start..end);
                if end == c {
                    break;
                }
                start += room - stride;
            }
            s.rows.clear();
            let (cls, sep) = (self.tokenizer.cls_id(), self.tokenizer.sep_id());
            let rows = &mut s.rows;
            for w in windows.iter() {
                let first = rows.ids.len();
                rows.ids.push(cls);
                rows.ids.extend_from_slice(&s.one.ids);
                rows.ids.push(sep);
                let types = rows.ids.len() - first;
                rows.ids.extend_from_slice(&s.two.ids[w.clone()]);
                rows.ids.push(sep);
                let len = rows.ids.len() - first;
                rows.types.extend((0..len).map(|i| u32::from(i >= types)));
                rows.offsets.resize(rows.ids.len(), (0, 0));
                rows.special.resize(rows.ids.len(), 0);
                rows.continues.resize(rows.ids.len(), false);
                rows.starts.push(rows.ids.len());
                rows.truncated.push(false);
            }
            let Scratch {
                rows,
                pass,
                probs,
                spans,
                two,
                windows,
                ..
            } = s;
            let top = options.top_k * 2 + 10;
            let mut answers: Vec<Answer> = Vec::new();
            let mut null = f32::INFINITY;
            self.run_rows(rows, pass, |row, b, seq, out| {
                let w = windows[row].clone();
                let len = rows.range(row).len();
                // Tokens that may be in an answer: the context's, and [CLS] (whose
                // probabilities are the null answer's).
                let first = q + 2;
                let last = first + w.len();
                let allowed = |i: usize| i == 0 || (first..last).contains(&i);
                fn logits(t: &Option<Tensor>, at: std::ops::Range<usize>) -> &[f32] {
                    t.as_ref().and_then(|t| t.data.get(at)).unwrap_or(&[])
                }
                let at = b * seq..b * seq + len;
                probs.clear();
                for x in [&out.start_logits, &out.end_logits].map(|t| logits(t, at.clone())) {
                    let from = probs.len();
                    probs.extend(
                        x.iter()
                            .enumerate()
                            .map(|(i, &v)| if allowed(i) { v } else { -10000.0 }),
                    );
                    super::classify::softmax(&mut probs[from..]);
                }
                if probs.len() < 2 * len {
                    return Ok(());
                }
                let (start_p, end_p) = probs.split_at_mut(len);
                if options.handle_impossible_answer {
                    null = null.min(start_p[0] * end_p[0]);
                }
                start_p[0] = 0.0;
                end_p[0] = 0.0;
                // Every span of allowed tokens within max_answer_len, best first.
                spans.clear();
                for (s, &sp) in start_p.iter().enumerate().take(last).skip(first) {
                    let ends = &end_p[s..last.min(s + options.max_answer_len)];
                    for (e, &ep) in (s..).zip(ends) {
                        let score = sp * ep;
                        if score > 0.0 {
                            spans.push((score, s as u32, e as u32));
                        }
                    }
                }
                let k = top.min(spans.len());
                if k == 0 {
                    return Ok(());
                }
                let order = |a: &(f32, u32, u32), b: &(f32, u32, u32)| {
                    b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2)))
                };
                if k < spans.len() {
                    spans.select_nth_unstable_by(k - 1, order);
                    spans.truncate(k);
                }
                spans.sort_unstable_by(order);
                for &(score, s, e) in spans.iter() {
                    // To context tokens, then out to the words' edges within this window.
                    let (mut s, mut e) =
                        (s as usize - first + w.start, e as usize - first + w.start);
                    while s > w.start && two.continues_word[s] {
                        s -= 1;
                    }
                    while e + 1 < w.end && two.continues_word[e + 1] {
                        e += 1;
                    }
                    let (start, end) = (two.offsets[s].0, two.offsets[e].1);
                    let text = context.get(start..end).unwrap_or("");
                    match answers
                        .iter_mut()
                        .find(|a| a.answer.to_lowercase() == text.to_lowercase())
                    {
                        Some(a) => a.score += score,
                        None => answers.push(Answer {
                            score,
                            start,
                            end,
                            answer: text.to_owned(),
                        }),
                    }
                }
                Ok(())
            })?;
            if options.handle_impossible_answer && null.is_finite() {
                answers.push(Answer {
                    score: null,
                    start: 0,
                    end: 0,
                    answer: String::new(),
                });
            }
            answers.sort_by(|a, b| b.score.total_cmp(&a.score));
            answers.truncate(options.top_k);
            Ok(answers)
        })
    }
}
