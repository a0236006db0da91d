//! Every name inside a cache directory, and the one way packcache writes a
//! file under its final name (a temp file renamed into place). Nothing else
//! in the engine spells a file name; garbage collection deletes only names
//! these functions recognise (see docs/FORMAT.md, "Directory layout").

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::error::{Error, Result};
use crate::engine::fs::Fs;
use crate::engine::pack::format::{is_lower_hex, is_pack_file_name};

/// The commit point of a version directory.
pub const MANIFEST_NAME: &str = "MANIFEST";
/// The lock a save holds while it commits.
pub const LOCK_NAME: &str = "LOCK";
/// The version's file that every open store holds a shared lock on.
pub const USERS_NAME: &str = "USERS";

/// Directory of one version under the root: the version string is hashed, so
/// no version can name a path outside the root. The prefix names the on-disk
/// format (`pc3`: packs of format 3), so a release that changes it starts
/// afresh beside the old directory instead of reading packs it cannot.
pub fn version_dir_name(version: &str) -> String {
    format!("pc3-{}", &blake3::hash(version.as_bytes()).to_hex()[..32])
}

/// Names of version directories of this format and of older ones (`pc1-`, `pc2-`),
/// which expire like unused versions.
pub fn is_version_dir_name(name: &str) -> bool {
    name.len() == 36 && ["pc1-", "pc2-", "pc3-"].iter().any(|p| name.starts_with(p)) && is_lower_hex(&name[4..])
}

/// The lock file guarding `owner`'s stage files.
pub fn stage_lock_name(owner: &str) -> String {
    format!("stage-{owner}.lock")
}

/// A stage file of `owner`: `stage-<owner>-<n>.pack`.
pub fn stage_file_name(owner: &str, n: u64) -> String {
    format!("stage-{owner}-{n}.pack")
}

/// The owner of a stage file or lock (`stage-<owner>-<n>.pack`,
/// `stage-<owner>.lock`), and whether `name` is the lock.
pub fn stage_file_owner(name: &str) -> Option<(&str, bool)> {
    let rest = name.strip_prefix("stage-")?;
    let is_hex = |s: &str| s.len() == 16 && is_lower_hex(s);
    if let Some(owner) = rest.strip_suffix(".lock") {
        return is_hex(owner).then_some((owner, true));
    }
    let (owner, n) = rest.strip_suffix(".pack")?.split_once('-')?;
    (is_hex(owner) && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some((owner, false))
}

/// 16 hex digits nobody can guess ahead: a hash of the process id, a
/// counter, the time and the std library's per-process random hash keys.
pub fn unguessable_hex() -> String {
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
    h.finalize().to_hex()[..16].to_owned()
}

/// A temp file name nobody can guess ahead: `<base>.tmp-<16 hex>`. (It is
/// created exclusively, too: a file or symlink planted under a name that
/// was guessed is never written through.)
pub fn temp_name(base: &str) -> String {
    format!("{base}.tmp-{}", unguessable_hex())
}

/// Names `temp_name` makes for the files packcache writes through a temp
/// file (the manifest and packs), and the `<pid>-<n>` suffix of earlier
/// releases. Nothing else containing `.tmp-` is one (say, `notes.tmp-backup`).
pub fn is_temp_name(name: &str) -> bool {
    let Some((base, suffix)) = name.rsplit_once(".tmp-") else { return false };
    let ours = base == MANIFEST_NAME || is_pack_file_name(base);
    let random = suffix.len() == 16 && is_lower_hex(suffix);
    let legacy = suffix.split_once('-').is_some_and(|(pid, n)| is_digits(pid) && is_digits(n));
    ours && (random || legacy)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Refuses a version directory that is a symlink: planted in place of
/// packcache's own directory, it would make every write land outside `root`.
pub fn check_not_link(fs: &dyn Fs, dir: &Path) -> Result<()> {
    if fs.is_symlink(dir).map_err(|e| Error::io("stat", dir, e))? {
        let why = std::io::Error::other("is a symbolic link; packcache follows no link inside its root");
        return Err(Error::io("open", dir, why));
    }
    Ok(())
}

/// Writes `dir/name` through a temp file renamed into place, so a file under
/// its final name is always complete; the temp file is removed on failure.
pub fn write_into_place(fs: &dyn Fs, dir: &Path, name: &str, parts: &[&[u8]], sync: bool) -> Result<()> {
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
