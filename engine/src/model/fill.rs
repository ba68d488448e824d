//! Masked-token prediction, as transformers' fill-mask pipeline.

use super::classify::softmax;
use super::{Model, Scratch};
use crate::config::Head;
use crate::tokenizer::clean_up_tokenization as clean_up;
use crate::Error;

/// One candidate for a `[MASK]`: the pipeline's `score`, `token`, `token_str`, `sequence`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fill {
    /// The candidate's probability (softmax over the vocabulary).
    pub score: f32,
    /// Its token id.
    pub token: u32,
    /// Its text, as `tokenizer.decode([token])`.
    pub token_str: String,
    /// The text with this candidate in the mask, decoded. With one mask, special tokens are
    /// left out; with several, the pipeline keeps them (and the other masks), and so does
    /// berth.
    pub sequence: String,
}

/// A text's candidates: one list per `[MASK]`, in text order, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct FillMask {
    pub masks: Vec<Vec<Fill>>,
    /// Whether the text was cut to the maximum sequence length.
    pub truncated: bool,
}

impl Model {
    /// The `top_k` most likely tokens for each `[MASK]` of each text, with a masked-LM model.
    /// A text without a mask (or whose masks were cut off) gives [`Error::NoMask`].
    ///
    /// ```no_run
    /// let model = berth::Model::load("bert-base-uncased.berth")?;
    /// let out = model.fill_mask(&["Paris is the [MASK] of France."], 3)?;
    /// for f in &out[0].masks[0] {
    ///     println!("{:.3} {:>10} {}", f.score, f.token_str, f.sequence);
    /// }
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn fill_mask(&self, texts: &[&str], top_k: usize) -> Result<Vec<FillMask>, Error> {
        self.need("fill_mask", Head::MaskedLm)?;
        if top_k == 0 {
            return Err(Error::BadOption {
                reason: "top_k 0: must be at least 1".into(),
            });
        }
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mask_id = self.tokenizer.mask_id();
        self.with_scratch(|s| {
            self.stage_texts(texts, s)?;
            let rows = &s.rows;
            for row in 0..rows.len() {
                if !rows.ids[rows.range(row)].contains(&mask_id) {
                    return Err(Error::NoMask {
                        text: row,
                        mask: self.tokenizer.token(mask_id).unwrap_or("[MASK]").to_owned(),
                    });
                }
            }
            let Scratch {
                rows,
                pass,
                probs,
                best,
                ids,
                ..
            } = s;
            let vocab = self.config().vocab_size;
            let pad = self.tokenizer.pad_id();
            let mut result = Vec::with_capacity(rows.len());
            self.run_rows(rows, pass, |row, b, seq, out| {
                let logits = out.logits.as_ref().map_or(&[][..], |t| &t.data[..]);
                let range = rows.range(row);
                let row_ids = &rows.ids[range.clone()];
                let single = row_ids.iter().filter(|&&id| id == mask_id).count() == 1;
                let mut masks = Vec::new();
                for (p, _) in row_ids.iter().enumerate().filter(|(_, &id)| id == mask_id) {
                    let at = (b * seq + p) * vocab;
                    probs.clear();
                    probs.extend_from_slice(logits.get(at..at + vocab).unwrap_or(&[]));
                    softmax(probs);
                    top(probs, top_k, best);
                    let fills = best
                        .iter()
                        .map(|&(score, token)| {
                            ids.clear();
                            ids.extend(row_ids.iter().enumerate().map(|(q, &id)| match q == p {
                                true => token,
                                false => id,
                            }));
                            ids.retain(|&id| id != pad);
                            Fill {
                                score,
                                token,
                                token_str: clean_up(&self.tokenizer.decode(&[token], false)),
                                sequence: clean_up(&self.tokenizer.decode(ids, single)),
                            }
                        })
                        .collect();
                    masks.push(fills);
                }
                result.push(FillMask {
                    masks,
                    truncated: rows.truncated[row],
                });
                Ok(())
            })?;
            Ok(result)
        })
    }
}

/// The `k` largest values of `p` with their indices into `best`, largest first; ties go to
/// the lower index.
fn top(p: &[f32], k: usize, best: &mut Vec<(f32, u32)>) {
    best.clear();
    for (i, &v) in p.iter().enumerate() {
        if best.len() == k && best.last().is_some_and(|&(w, _)| v <= w) {
            continue;
        }
        let at = best.partition_point(|&(w, _)| w >= v);
        best.insert(at, (v, i as u32));
        best.truncate(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_keeps_the_largest_in_order_with_ties_to_the_lower_index() {
        let p = [0.1, 0.5, 0.2, 0.5, 0.05, 0.3];
        let mut best = Vec::new();
        top(&p, 3, &mut best);
        assert_eq!(best, [(0.5, 1), (0.5, 3), (0.3, 5)]);
        top(&p, 10, &mut best);
        assert_eq!(best.len(), p.len());
        assert!(best.windows(2).all(|w| w[0].0 >= w[1].0));
    }

    #[test]
    fn clean_up_joins_punctuation_and_contractions() {
        assert_eq!(
            clean_up("it ' s over , is n't it ?"),
            "it's over, isn't it?"
        );
    }
}
