//! Shared setup for berth's criterion benches: the real MiniLM checkpoint, converted once.

use std::path::PathBuf;

use berth_tools::convert::{convert_to_file, Options, OutDtype};

/// The all-MiniLM-L6-v2 checkpoint fetched by scripts/fetch-minilm.sh (`$BERTH_MINILM_DIR`
/// or the script's cache location).
pub fn minilm_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BERTH_MINILM_DIR") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("BERTH_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|x| PathBuf::from(x).join("berth")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/berth")))
        .unwrap_or_else(|| PathBuf::from(".cache/berth"));
    cache.join("all-MiniLM-L6-v2")
}

/// MiniLM converted at `dtype` into the target directory (re-converted on every run, so that
/// a bench never measures a stale file). Panics with instructions when the checkpoint is
/// missing: benches are run by hand, after scripts/fetch-minilm.sh.
pub fn minilm_berth(dtype: OutDtype) -> PathBuf {
    let src = minilm_dir();
    assert!(
        src.join("model.safetensors").exists(),
        "{} has no model.safetensors: run scripts/fetch-minilm.sh first",
        src.display()
    );
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(format!("bench-minilm-{}.berth", dtype.name()));
    convert_to_file(
        &src,
        &out,
        &Options {
            dtype,
            progress: false,
        },
    )
    .unwrap_or_else(|e| panic!("converting MiniLM: {e}"));
    out
}
