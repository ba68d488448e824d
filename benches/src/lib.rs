//! Shared setup for berth's criterion benches: the real MiniLM checkpoint, converted once.

use std::path::PathBuf;

use berth_tools::convert::{convert_to_file, Options, OutDtype};

/// MiniLM converted at `dtype` into the target directory (re-converted on every run, so that
/// a bench never measures a stale file). Panics with instructions when the checkpoint is
/// missing: benches are run by hand, after scripts/fetch-minilm.sh.
pub fn minilm_berth(dtype: OutDtype) -> PathBuf {
    let src = berth_tools::cache::fetched_minilm_dir().unwrap_or_else(|e| panic!("{e}"));
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(format!("bench-minilm-{}.berth", dtype.name()));
    convert_to_file(
        &src,
        &out,
        &Options {
            dtype,
            progress: false,
            smoothing: true,
        },
    )
    .unwrap_or_else(|e| panic!("converting MiniLM: {e}"));
    out
}
