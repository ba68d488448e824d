//! Writes small valid `.berth` files (every head, every dtype, with and without a tokenizer)
//! into a directory: the seed corpus of the `reader` fuzz target (see fuzz/README.md).
//!
//!     cargo run -p berth --example fuzz_seeds -- fuzz/corpus/reader

#[path = "../tests/common/mod.rs"]
mod common;

use berth::config::Head;
use berth::format::encode;
use common::{micro_config, micro_tensors, micro_tokenizer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: fuzz_seeds <output-dir>")?;
    std::fs::create_dir_all(&dir)?;
    let heads = Head::ALL;
    let mut n = 0;
    for (i, head) in heads.iter().copied().enumerate() {
        let cfg = micro_config(head);
        let tok = micro_tokenizer(&cfg);
        for with_tokenizer in [true, false] {
            let bytes = encode(
                &cfg,
                with_tokenizer.then_some(&tok),
                &micro_tensors(&cfg, i as u64),
            )?;
            std::fs::write(
                format!("{dir}/micro-{}-{with_tokenizer}.berth", head.architecture()),
                bytes,
            )?;
            n += 1;
        }
    }
    println!("wrote {n} seeds to {dir}");
    Ok(())
}
