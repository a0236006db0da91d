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
pub(crate) mod memory;
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

/// A temp file name nobody can guess ahead: `<base>.tmp-<16 hex>`, the hex
/// a hash of the process id, a counter, the time and the std library's
/// per-process random hash keys. (It is created exclusively, too: a file or
/// symlink planted under a name that was guessed is never written through.)
pub(crate) fn temp_name(base: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    h.update(&std::process::id().to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    h.update(&now.as_nanos().to_le_bytes());
    let mut keyed = std::collections::hash_map::RandomState::new().build_hasher();
    keyed.write_u64(0);
    h.update(&keyed.finish().to_le_bytes());
    format!("{base}.tmp-{}", &h.finalize().to_hex()[..16])
}

/// Names `temp_name` makes for the files packcache writes through a temp
/// file (the manifest and packs), and the `<pid>-<n>` suffix of earlier
/// releases. Nothing else containing `.tmp-` is one (say, `notes.tmp-backup`).
pub(crate) fn is_temp_name(name: &str) -> bool {
    let Some((base, suffix)) = name.rsplit_once(".tmp-") else { return false };
    let ours = base == manifest::MANIFEST_NAME || format::is_pack_file_name(base);
    let random = suffix.len() == 16 && format::is_lower_hex(suffix);
    let legacy = suffix.split_once('-').is_some_and(|(pid, n)| is_digits(pid) && is_digits(n));
    ours && (random || legacy)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Refuses a version directory that is a symlink: planted in place of
/// packcache's own directory, it would make every write land outside `root`.
pub(crate) fn check_not_link(fs: &dyn fs::Fs, dir: &std::path::Path) -> Result<()> {
    if fs.is_symlink(dir).map_err(|e| Error::io("stat", dir, e))? {
        let why = std::io::Error::other("is a symbolic link; packcache follows no link inside its root");
        return Err(Error::io("open", dir, why));
    }
    Ok(())
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
