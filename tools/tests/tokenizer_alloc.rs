//! After warm-up, encoding allocates nothing: every buffer, scratch space included, lives in
//! the caller's reused `Encoding` / `BatchEncoding`. A counting global allocator (per thread,
//! so the test harness's own threads do not count) proves it.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use berth::tokenizer::{BatchEncoding, EncodeOptions, Encoding, Truncation};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers every operation to the system allocator unchanged; it only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

const TEXTS: [&str; 7] = [
    "Z\u{301}\u{316}\u{300}\u{317}\u{302}\u{318}\u{303}\u{319}\u{304}\u{31a}a\u{35c}\u{35d}\u{35e}\u{35f}\u{360}lgo",
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "Café crème brûlée, naïve résumé — Ångström İstanbul ΟΔΥΣΣΕΥΣ.",
    "野口里佳 東京 한국어 텍스트 ไทย नमस्ते 👨‍👩‍👧‍👦 🥰🥰",
    "unbelievably-long-hyphenated-identifier_with_underscores and [MASK] tokens [SEP]",
    "\u{200b}\u{feff}control\u{0}chars\ttabs\nnewlines\u{a0}odd spaces",
    "",
];

#[test]
fn encoding_allocates_nothing_after_warm_up() {
    let (tok, _) = berth::tokenizer::hf::from_dir(&support::minilm_dir()).unwrap();
    let opts = EncodeOptions::default();
    let short = EncodeOptions {
        max_length: Some(12),
        truncation: Truncation::LongestFirst,
        add_special_tokens: true,
    };
    let mut enc = Encoding::default();
    let mut batch = BatchEncoding::default();
    let work = |enc: &mut Encoding, batch: &mut BatchEncoding| {
        for t in TEXTS {
            tok.encode_into(t, &opts, enc).unwrap();
            tok.encode_into(t, &short, enc).unwrap();
            tok.encode_pair_into(t, TEXTS[0], &opts, enc).unwrap();
            tok.encode_pair_into(TEXTS[1], t, &short, enc).unwrap();
            tok.encode_bytes_into(t.as_bytes(), &opts, enc).unwrap();
        }
        tok.encode_batch_into(&TEXTS, &opts, batch).unwrap();
    };
    let warm = allocations(|| work(&mut enc, &mut batch));
    assert!(warm > 0, "the counter counts");
    for round in 0..3 {
        let n = allocations(|| work(&mut enc, &mut batch));
        assert_eq!(n, 0, "round {round}: {n} allocations after warm-up");
    }
    println!(
        "warm-up {warm} allocations, then 0 per call over {} calls",
        3 * (TEXTS.len() * 5 + 1)
    );
}
