//! BertNormalizer and BertPreTokenizer, as Hugging Face `tokenizers` runs them, on a buffer of
//! characters that each remember the byte range of the original text they came from.
//!
//! The Unicode tables are the ones Hugging Face uses (`unicode_categories` for categories,
//! `unicode-normalization-alignments`, Unicode 9.0, for NFD), so that characters assigned after
//! Unicode 9 are treated as it treats them (for instance, as unassigned `Cn`, which
//! `clean_text` removes). Lowercasing and `is_whitespace` are std's, as there.
//!
//! Alignment follows Hugging Face's `NormalizedString::transform`: a character that replaces
//! one of the input keeps that input's range; a character inserted by an expansion (NFD, a
//! multi-character lowercase) takes the range of the last input character consumed.

use unicode_categories::UnicodeCategories;
use unicode_normalization_alignments::char::{canonical_combining_class, decompose_canonical};

/// One normalised character and the original byte range it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NChar {
    pub c: char,
    pub start: u32,
    pub end: u32,
}

/// The normaliser's settings, resolved (`strip_accents: None` follows `lowercase`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Normalizer {
    pub clean_text: bool,
    pub handle_chinese_chars: bool,
    pub strip_accents: bool,
    pub lowercase: bool,
}

/// tab, newline and carriage return count as whitespace, not control.
fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// Control in BERT's sense: Unicode "other" (Cc, Cf, Cn, Co, Cs) except tab, newline, CR.
fn is_control(c: char) -> bool {
    if c.is_ascii() {
        return (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') || c == '\x7f';
    }
    c.is_other()
}

/// The CJK ideograph ranges BERT splits per character (as in Google's BERT and Hugging Face).
fn is_chinese_char(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B920..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

/// BertPreTokenizer's punctuation: ASCII punctuation or any Unicode punctuation (P*).
pub(crate) fn is_bert_punctuation(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation();
    }
    c.is_punctuation()
}

impl Normalizer {
    /// Normalises `text` (whose first byte is at `base` in the original) into `out`, using
    /// `tmp` and `pending` as working buffers. All are cleared first; none shrinks.
    pub fn normalize(
        &self,
        text: &str,
        base: u32,
        out: &mut Vec<NChar>,
        tmp: &mut Vec<NChar>,
        pending: &mut Vec<Pending>,
    ) {
        out.clear();
        // Pass 1: clean_text and the CJK split, one input character at a time.
        let first = if self.strip_accents || self.lowercase {
            &mut *tmp
        } else {
            &mut *out
        };
        first.clear();
        for (i, c) in text.char_indices() {
            let start = base + i as u32;
            let nc = NChar {
                c,
                start,
                end: start + c.len_utf8() as u32,
            };
            if self.clean_text {
                if c == '\0' || c == '\u{fffd}' || is_control(c) {
                    continue;
                }
                if is_whitespace(c) {
                    first.push(NChar { c: ' ', ..nc });
                    continue;
                }
            }
            if self.handle_chinese_chars && is_chinese_char(c) {
                // The padding spaces are always removed by the pre-tokenizer, so the range
                // they carry never reaches an offset.
                first.extend([NChar { c: ' ', ..nc }, nc, NChar { c: ' ', ..nc }]);
            } else {
                first.push(nc);
            }
        }
        if !(self.strip_accents || self.lowercase) {
            return;
        }
        // Pass 2: NFD and dropping non-spacing marks, then lowercasing.
        let input: &[NChar] = tmp;
        if !self.strip_accents || input.iter().all(|n| n.c.is_ascii()) {
            // ASCII is its own NFD and has no marks.
            for n in input {
                self.push_lowercased(*n, out);
            }
            return;
        }
        nfd(input, pending, |n| {
            if !n.c.is_mark_nonspacing() {
                self.push_lowercased(n, out);
            }
        });
    }

    fn push_lowercased(&self, n: NChar, out: &mut Vec<NChar>) {
        if !self.lowercase {
            out.push(n);
        } else if n.c.is_ascii() {
            out.push(NChar {
                c: n.c.to_ascii_lowercase(),
                ..n
            });
        } else {
            // Every character of a multi-character lowercase keeps the source's range.
            out.extend(n.c.to_lowercase().map(|c| NChar { c, ..n }));
        }
    }
}

/// A decomposed character waiting for canonical ordering: its combining class, the
/// character, and whether it was inserted by a decomposition (not the first component).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    class: u8,
    c: char,
    inserted: bool,
}

/// Canonical decomposition with canonical ordering, emitting each character with its range.
///
/// This is what `unicode-normalization-alignments`' `nfd()` iterator computes (its tables and
/// its algorithm: a run of non-starters is stably sorted by combining class when the next
/// starter or the end arrives), over a caller-owned buffer so that no call allocates once the
/// buffer has grown. Ranges are assigned in output order as Hugging Face's
/// `NormalizedString::transform` assigns them: a first component takes the next input
/// character's range, an inserted one the range of the last input character taken.
fn nfd(input: &[NChar], pending: &mut Vec<Pending>, mut emit: impl FnMut(NChar)) {
    pending.clear();
    let mut next_input = 0usize;
    let mut last = NChar {
        c: ' ',
        start: 0,
        end: 0,
    };
    let mut flush = |pending: &mut Vec<Pending>, upto: usize| {
        stable_sort_by_class(&mut pending[..upto]);
        for p in pending.drain(..upto) {
            if !p.inserted {
                // Every input character yields exactly one first component.
                last = input[next_input.min(input.len() - 1)];
                next_input += 1;
            }
            emit(NChar { c: p.c, ..last });
        }
    };
    for n in input {
        let mut first = true;
        decompose_canonical(n.c, |d| {
            let class = canonical_combining_class(d);
            if class == 0 {
                // A starter: everything before it is final.
                let upto = pending.len();
                flush(pending, upto);
            }
            pending.push(Pending {
                class,
                c: d,
                inserted: !first,
            });
            first = false;
        });
    }
    let upto = pending.len();
    flush(pending, upto);
}

/// A stable sort by combining class. Runs of combining marks are short, so insertion sort
/// (which needs no buffer) is used up to a length where its quadratic cost could matter.
fn stable_sort_by_class(run: &mut [Pending]) {
    if run.len() > 64 {
        run.sort_by_key(|p| p.class);
        return;
    }
    for i in 1..run.len() {
        let mut j = i;
        while j > 0 && run[j - 1].class > run[j].class {
            run.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// BertPreTokenizer: splits `chars` on whitespace (removed) and punctuation (each its own
/// word). Pushes the words' `[start, end)` index ranges into `words` (cleared first).
pub(crate) fn pre_tokenize(chars: &[NChar], words: &mut Vec<(u32, u32)>) {
    words.clear();
    let mut start = None;
    for (i, n) in chars.iter().enumerate() {
        let i = i as u32;
        if n.c.is_whitespace() {
            if let Some(s) = start.take() {
                words.push((s, i));
            }
        } else if is_bert_punctuation(n.c) {
            if let Some(s) = start.take() {
                words.push((s, i));
            }
            words.push((i, i + 1));
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        words.push((s, chars.len() as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bert() -> Normalizer {
        Normalizer {
            clean_text: true,
            handle_chinese_chars: true,
            strip_accents: true,
            lowercase: true,
        }
    }

    fn run(n: Normalizer, text: &str) -> (String, Vec<(u32, u32)>) {
        let (mut out, mut tmp, mut pending) = (Vec::new(), Vec::new(), Vec::new());
        n.normalize(text, 0, &mut out, &mut tmp, &mut pending);
        (
            out.iter().map(|c| c.c).collect(),
            out.iter().map(|c| (c.start, c.end)).collect(),
        )
    }

    #[test]
    fn accents_are_stripped_and_keep_their_range() {
        let (s, a) = run(bert(), "Café");
        assert_eq!(s, "cafe");
        assert_eq!(a, vec![(0, 1), (1, 2), (2, 3), (3, 5)]);
    }

    #[test]
    fn controls_are_dropped_and_whitespace_becomes_space() {
        let (s, a) = run(bert(), "a\u{200b}b\u{a0}c\0\u{fffd}\td");
        assert_eq!(s, "ab c d");
        assert_eq!(a[1], (4, 5));
    }

    #[test]
    fn cjk_is_padded_and_pre_tokenized_per_character() {
        let (mut out, mut tmp, mut pending) = (Vec::new(), Vec::new(), Vec::new());
        bert().normalize("野口 Rika!", 0, &mut out, &mut tmp, &mut pending);
        let mut words = Vec::new();
        pre_tokenize(&out, &mut words);
        let text: Vec<String> = words
            .iter()
            .map(|&(a, b)| out[a as usize..b as usize].iter().map(|n| n.c).collect())
            .collect();
        assert_eq!(text, ["野", "口", "rika", "!"]);
    }

    /// The buffered NFD emits exactly what the crate's own iterator does (characters, order
    /// and first/inserted flags) over every code point and over mark-heavy sequences.
    #[test]
    fn nfd_matches_the_crate_iterator() {
        use unicode_normalization_alignments::UnicodeNormalization;
        let mut texts: Vec<String> = (0..0x11_0000u32)
            .filter_map(char::from_u32)
            .collect::<Vec<_>>()
            .chunks(64)
            .map(|c| c.iter().collect())
            .collect();
        texts.push("e\u{301}\u{323}a\u{308}\u{304}\u{301}\u{31b}\u{323}\u{328}\u{335}".into());
        texts.push("\u{301}\u{300}x".into());
        texts.push("a".to_string() + &"\u{301}\u{316}".repeat(50));
        let mut pending = Vec::new();
        for t in &texts {
            let input: Vec<NChar> = t
                .chars()
                .map(|c| NChar {
                    c,
                    start: 0,
                    end: 0,
                })
                .collect();
            let want: Vec<(char, bool)> = t.chars().nfd().map(|(c, ch)| (c, ch > 0)).collect();
            let mut got = Vec::new();
            let mut inserted = Vec::new();
            // Recover the flags from ranges: give each input character a distinct range.
            let input: Vec<NChar> = input
                .iter()
                .enumerate()
                .map(|(i, n)| NChar {
                    start: i as u32,
                    end: i as u32 + 1,
                    ..*n
                })
                .collect();
            let mut seen = u32::MAX;
            nfd(&input, &mut pending, |n| {
                inserted.push(n.start == seen);
                seen = n.start;
                got.push(n.c);
            });
            let want_chars: Vec<char> = want.iter().map(|w| w.0).collect();
            assert_eq!(got, want_chars, "{t:?}");
            // An inserted component follows its first one, so it repeats the previous range;
            // a first component takes a new range.
            let want_flags: Vec<bool> = want.iter().map(|w| w.1).collect();
            assert_eq!(inserted, want_flags, "{t:?}");
        }
    }

    #[test]
    fn lowercase_expansion_shares_the_source_range() {
        let n = Normalizer {
            strip_accents: false,
            ..bert()
        };
        let (s, a) = run(n, "İx");
        assert_eq!(s, "i\u{307}x");
        assert_eq!(a, vec![(0, 2), (0, 2), (2, 3)]);
    }
}
