//! Properties of the tokenizer's output on generated text (MiniLM's tokenizer):
//! offsets lie in the text, on character boundaries, in non-decreasing order; and the text
//! under each token's offsets normalises to that token (for the pieces that share one range,
//! as when WordPiece splits the expansion of one character, to their concatenation).

mod support;

use std::sync::OnceLock;

use berth::tokenizer::{EncodeOptions, Encoding, Tokenizer};
use proptest::prelude::*;

fn tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        berth::tokenizer::hf::from_dir(&support::minilm_dir())
            .unwrap()
            .0
    })
}

use support::text;

fn check(text: &str, enc: &Encoding) -> Result<(), TestCaseError> {
    let tok = tokenizer();
    let prefix = tok.continuing_subword_prefix();
    let mut prev_start = 0;
    let mut i = 0;
    while i < enc.len() {
        let (s, e) = enc.offsets[i];
        if enc.special_tokens_mask[i] == 1 {
            prop_assert_eq!((s, e), (0, 0));
            i += 1;
            continue;
        }
        prop_assert!(
            s < e && e <= text.len(),
            "offsets {:?} in {} bytes",
            (s, e),
            text.len()
        );
        prop_assert!(text.is_char_boundary(s) && text.is_char_boundary(e));
        prop_assert!(s >= prev_start, "offsets go backwards at token {}", i);
        prev_start = s;
        // The tokens that share this exact range.
        let mut j = i;
        let mut pieces = String::new();
        let mut has_unk = false;
        while j < enc.len() && enc.offsets[j] == (s, e) && enc.special_tokens_mask[j] == 0 {
            let t = tok.token(enc.ids[j]).unwrap();
            has_unk |= enc.ids[j] == tok.unk_id();
            // A piece starting with the prefix continues a word ('#' is punctuation, so no
            // word begins with it): its text is the piece without the prefix.
            pieces.push_str(t.strip_prefix(prefix).unwrap_or(t));
            j += 1;
        }
        let under = &text[s..e];
        let literal = pieces == under; // a special token written in the text
        if !has_unk && !literal {
            let normalized: String = tok
                .normalize_str(under)
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            prop_assert_eq!(
                &normalized,
                &pieces,
                "text under {:?} is {:?}",
                (s, e),
                under
            );
        }
        i = j;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn offsets_are_sound_and_cover_their_tokens(t in text()) {
        let mut enc = Encoding::default();
        tokenizer().encode_into(&t, &EncodeOptions { max_length: Some(512), ..EncodeOptions::default() }, &mut enc).unwrap();
        check(&t, &enc)?;
    }

    #[test]
    fn pairs_keep_offsets_per_sequence(a in text(), b in text()) {
        let mut enc = Encoding::default();
        tokenizer().encode_pair_into(&a, &b, &EncodeOptions { max_length: Some(512), ..EncodeOptions::default() }, &mut enc).unwrap();
        let split = enc.type_ids.iter().position(|&t| t == 1).unwrap_or(enc.len());
        let mut first = enc.clone();
        first.ids.truncate(split);
        first.offsets.truncate(split);
        first.special_tokens_mask.truncate(split);
        check(&a, &first)?;
        let mut second = enc.clone();
        second.ids.drain(..split);
        second.offsets.drain(..split);
        second.special_tokens_mask.drain(..split);
        check(&b, &second)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A padded batch holds each row exactly as encoding it alone gives.
    #[test]
    fn batch_rows_equal_single_encodings(texts in prop::collection::vec(text(), 0..6)) {
        let tok = tokenizer();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let opts = EncodeOptions::default();
        let mut batch = berth::tokenizer::BatchEncoding::default();
        tok.encode_batch_into(&refs, &opts, &mut batch).unwrap();
        prop_assert_eq!(batch.batch, texts.len());
        let mut enc = Encoding::default();
        for (row, t) in refs.iter().enumerate() {
            tok.encode_into(t, &opts, &mut enc).unwrap();
            let r = row * batch.seq..(row + 1) * batch.seq;
            let n = enc.len();
            prop_assert_eq!(batch.lengths[row], n);
            prop_assert_eq!(&batch.input_ids[r.clone()][..n], &enc.ids[..]);
            prop_assert_eq!(&batch.token_type_ids[r.clone()][..n], &enc.type_ids[..]);
            prop_assert_eq!(&batch.offsets[r.clone()][..n], &enc.offsets[..]);
            prop_assert!(batch.attention_mask[r.clone()][..n].iter().all(|&m| m == 1));
            prop_assert!(batch.attention_mask[r.clone()][n..].iter().all(|&m| m == 0));
            prop_assert!(batch.input_ids[r][n..].iter().all(|&id| id == tok.pad_id()));
        }
    }
}
