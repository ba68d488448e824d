//! Feeds arbitrary bytes to the tokenizer (MiniLM's vocabulary, every normaliser setting,
//! every truncation strategy, single texts and pairs, valid and invalid UTF-8 through the
//! `&[u8]` entry point) and checks the output's invariants: ids in the vocabulary, the length
//! within the max, offsets inside the text, on character boundaries and non-decreasing.
//!
//! Input: byte 0 picks the normaliser settings, byte 1 the max length and truncation; the
//! rest is the text, split into a pair at the first 0xFE byte (never valid UTF-8) if any.

#![no_main]

use std::sync::OnceLock;

use berth::config::{TokenizerConfig, TokenizerKind, Vocab};
use berth::tokenizer::{BatchEncoding, EncodeOptions, Encoding, Tokenizer, Truncation};
use libfuzzer_sys::fuzz_target;

const VOCAB: &str = include_str!("../../fixtures/tokenizer/vocab.txt");

fn tokenizer(flags: u8) -> &'static Tokenizer {
    static TOKS: [OnceLock<Tokenizer>; 32] = [const { OnceLock::new() }; 32];
    TOKS[usize::from(flags % 32)].get_or_init(|| {
        let tokens: Vec<&str> = VOCAB.lines().collect();
        let config = TokenizerConfig {
            kind: TokenizerKind::WordPiece,
            lowercase: flags & 1 != 0,
            strip_accents: [None, Some(true), Some(false), None][usize::from(flags >> 1 & 3)],
            handle_chinese_chars: flags & 8 != 0,
            clean_text: flags & 16 != 0,
            max_length: 512,
            max_input_chars_per_word: 100,
            continuing_subword_prefix: "##".into(),
            unk_id: 100,
            cls_id: 101,
            sep_id: 102,
            pad_id: 0,
            mask_id: 103,
            vocab: Vocab::from_tokens(tokens).expect("small vocabulary"),
            special_ids: vec![0, 100, 101, 102, 103],
        };
        Tokenizer::new(&config)
    })
}

fn check(tok: &Tokenizer, text: &str, enc: &Encoding, seq_type: u32) {
    let mut prev = 0;
    for ((&id, &(s, e)), &t) in enc.ids.iter().zip(&enc.offsets).zip(&enc.type_ids) {
        assert!((id as usize) < tok.vocab_size());
        if t != seq_type || (s, e) == (0, 0) {
            continue;
        }
        assert!(
            s < e && e <= text.len(),
            "offsets {s}..{e} of {}",
            text.len()
        );
        assert!(text.is_char_boundary(s) && text.is_char_boundary(e));
        assert!(s >= prev);
        prev = s;
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, limits, rest @ ..] = data else {
        return;
    };
    let tok = tokenizer(*flags);
    let opts = EncodeOptions {
        max_length: Some(usize::from(*limits >> 2)),
        truncation: [
            Truncation::LongestFirst,
            Truncation::OnlyFirst,
            Truncation::OnlySecond,
            Truncation::LongestFirst,
        ][usize::from(limits & 3)],
        add_special_tokens: flags & 32 == 0,
    };
    let mut enc = Encoding::default();
    if tok.encode_bytes_into(rest, &opts, &mut enc).is_ok() {
        let text = std::str::from_utf8(rest).expect("accepted bytes are UTF-8");
        assert!(enc.len() <= usize::from(*limits >> 2));
        check(tok, text, &enc, 0);
        let _ = tok.decode(&enc.ids, flags & 64 != 0);
    }
    let (a, b) = match rest.iter().position(|&x| x == 0xFE) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (Ok(a), Some(Ok(b))) = (std::str::from_utf8(a), b.map(std::str::from_utf8)) else {
        return;
    };
    if tok.encode_pair_into(a, b, &opts, &mut enc).is_ok() {
        assert!(enc.len() <= usize::from(*limits >> 2));
        check(tok, a, &enc, 0);
        check(tok, b, &enc, 1);
    }
    let mut batch = BatchEncoding::default();
    if tok.encode_batch_into(&[a, b], &opts, &mut batch).is_ok() {
        assert_eq!(batch.input_ids.len(), batch.batch * batch.seq);
    }
});
