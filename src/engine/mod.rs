//! The pack storage engine. It knows nothing of N-API: the binding in
//! `src/lib.rs` wraps [`Store`].
//!
//! Layers, bottom up: `fs` (all disk access) → `format`/`writer`/`reader`
//! (one pack file) → `manifest` (the commit point) → `save` (merging updates,
//! compaction, with `compact` reading the packs it rewrites) and `gc`
//! (orphans, expiry) → `store` (the public API).

pub mod bloom;
mod compact;
pub mod error;
#[cfg(any(test, feature = "testing"))]
pub mod faultfs;
pub mod format;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod fs;
pub mod gc;
pub mod keyhash;
pub mod load;
pub mod manifest;
mod par;
pub mod reader;
#[cfg(any(test, feature = "testing"))]
pub mod simfs;
pub mod save;
pub mod stage;
pub mod store;
pub mod updates;
pub mod writer;

#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use load::{LoadedScope, PairBuf};
pub use store::{Options, SaveStats, Store};
pub use writer::Compression;

use std::sync::atomic::{AtomicU64, Ordering};

/// A temp file name unique within this machine: `<base>.tmp-<pid>-<n>`.
pub(crate) fn temp_name(base: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{base}.tmp-{}-{n}", std::process::id())
}

pub(crate) fn is_temp_name(name: &str) -> bool {
    name.contains(".tmp-")
}

/// Writes `dir/name` through a temp file renamed into place, so a file under
/// its final name is always complete; the temp file is removed on failure.
pub(crate) fn write_into_place(fs: &dyn fs::Fs, dir: &std::path::Path, name: &str, parts: &[&[u8]], sync: bool) -> Result<()> {
    let tmp = dir.join(temp_name(name));
    let path = dir.join(name);
    if let Err(e) = fs.write_file(&tmp, parts, sync) {
        let _ = fs.remove_file(&tmp);
        return Err(Error::io("write", tmp, e));
    }
    if let Err(e) = fs.rename(&tmp, &path) {
        let _ = fs.remove_file(&tmp);
        return Err(Error::io("rename", path, e));
    }
    Ok(())
}
