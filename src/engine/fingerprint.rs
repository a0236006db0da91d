//! File fingerprints for fine-grained invalidation: what a cached entry
//! depends on (a loader, a config file, an imported file), recorded as size,
//! mtime and blake3 of the content, and checked later at a cost that follows
//! the change: an unchanged file costs one `stat`, only a file whose size or
//! mtime moved is read and hashed, and a file touched without a change of
//! content is reported unchanged.
//!
//! A snapshot is a self-describing byte string (stored as a cache value):
//!
//! ```text
//! "PCFP" u32 version=1 u32 count
//! count × { u32 path_len, path (UTF-8), u8 kind, u8 flags,
//!           u64 size, i64 mtime_ns, [u8; 32] hash }       little-endian
//! ```
//!
//! `kind`: 0 missing, 1 file, 2 directory (hash of its sorted entry names,
//! unless flag bit 1 says only its existence counts), 3 unreadable (no hash).
//! `flags` bit 0, "racy": the mtime was within [`RACY_WINDOW`] of the
//! snapshot's time, so a later write in the same clock tick could keep size
//! and mtime; such entries are always re-hashed. Bit 1, "unlisted": a
//! directory whose entries do not count (a resolver's lookup directory).

use std::fs::{self, File, Metadata};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::engine::error::{Error, Result};
use crate::engine::par;

const MAGIC: &[u8; 4] = b"PCFP";
const VERSION: u32 = 1;
const FIXED: usize = 4 + 1 + 1 + 8 + 8 + 32;
/// Files modified this close to the snapshot are re-hashed on every check
/// (coarse mtime clocks: FAT 2 s, HFS+ 1 s, some network file systems).
pub const RACY_WINDOW: Duration = Duration::from_secs(2);
const RACY: u8 = 1;
const UNLISTED: u8 = 2;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Kind {
    Missing = 0,
    File = 1,
    Directory = 2,
    Unreadable = 3,
}

/// One path's recorded state.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FileState {
    pub path: String,
    pub kind: Kind,
    pub racy: bool,
    /// A directory recorded by existence only (its entries not hashed).
    pub unlisted: bool,
    pub size: u64,
    pub mtime_ns: i64,
    pub hash: [u8; 32],
}

/// Fingerprints `paths` (absolute) on all cores; returns the snapshot bytes.
/// With `list_directories` false a directory counts by its existence only.
pub fn snapshot(paths: Vec<String>, list_directories: bool) -> Result<Vec<u8>> {
    if let Some(p) = paths.iter().find(|p| !Path::new(p).is_absolute()) {
        return Err(Error::InvalidArg(format!("fingerprint paths must be absolute: {p:?}")));
    }
    let now = SystemTime::now();
    let states = par::map(paths, |path| state_of(path, now, list_directories));
    Ok(encode(&states))
}

/// The indexes of the entries of `snapshot` whose file changed since.
pub fn changed(snapshot: &[u8]) -> Result<Vec<u32>> {
    Ok(changed_entries(snapshot)?.into_iter().map(|(i, _)| i).collect())
}

/// The paths of the entries of `snapshot` whose file changed since.
pub fn changed_paths(snapshot: &[u8]) -> Result<Vec<String>> {
    Ok(changed_entries(snapshot)?.into_iter().map(|(_, state)| state.path).collect())
}

fn changed_entries(snapshot: &[u8]) -> Result<Vec<(u32, FileState)>> {
    let indexed: Vec<(u32, FileState)> = (0..).zip(decode(snapshot)?).collect();
    let verdicts = par::map(indexed, |(i, old)| is_changed(&old).then_some((i, old)));
    Ok(verdicts.into_iter().flatten().collect())
}

fn state_of(path: String, now: SystemTime, list_directories: bool) -> FileState {
    let mut state =
        FileState { path, kind: Kind::Missing, racy: false, unlisted: false, size: 0, mtime_ns: 0, hash: [0; 32] };
    let meta = match fs::metadata(&state.path) {
        Ok(meta) => meta,
        Err(e) if is_absent(&e) => return state,
        Err(_) => {
            state.kind = Kind::Unreadable;
            return state;
        }
    };
    state.kind = if meta.is_dir() { Kind::Directory } else { Kind::File };
    if meta.is_dir() && !list_directories {
        state.unlisted = true;
        return state;
    }
    state.size = if meta.is_dir() { 0 } else { meta.len() };
    state.mtime_ns = mtime_ns(&meta);
    state.racy = meta.modified().map_or(true, |m| m + RACY_WINDOW >= now);
    match content_hash(&state.path, state.kind) {
        Ok(hash) => state.hash = hash,
        Err(_) => state.kind = Kind::Unreadable,
    }
    state
}

fn is_changed(old: &FileState) -> bool {
    let meta = match fs::metadata(&old.path) {
        Ok(meta) => meta,
        Err(e) if is_absent(&e) => return old.kind != Kind::Missing,
        Err(_) => return true,
    };
    let kind = if meta.is_dir() { Kind::Directory } else { Kind::File };
    if kind != old.kind {
        return true;
    }
    if old.unlisted {
        return false;
    }
    let size = if meta.is_dir() { 0 } else { meta.len() };
    if size != old.size {
        return true;
    }
    if mtime_ns(&meta) == old.mtime_ns && !old.racy {
        return false;
    }
    content_hash(&old.path, kind).map_or(true, |hash| hash != old.hash)
}

fn is_absent(e: &io::Error) -> bool {
    // A path through a regular file (`a.js/index.js`) is as absent as a missing one.
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

fn mtime_ns(meta: &Metadata) -> i64 {
    match meta.modified().map(|m| m.duration_since(UNIX_EPOCH)) {
        Ok(Ok(after)) => after.as_nanos().min(i64::MAX as u128) as i64,
        Ok(Err(before)) => -(before.duration().as_nanos().min(i64::MAX as u128) as i64),
        Err(_) => 0,
    }
}

/// blake3 of a file's bytes, or of a directory's sorted entry names (each
/// followed by a NUL), so adding or removing an entry changes it.
fn content_hash(path: &str, kind: Kind) -> io::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    if kind == Kind::Directory {
        let mut names: Vec<_> = fs::read_dir(path)?.map(|e| e.map(|e| e.file_name())).collect::<io::Result<_>>()?;
        names.sort();
        for name in names {
            hasher.update(name.as_encoded_bytes());
            hasher.update(&[0]);
        }
    } else {
        hasher.update_reader(File::open(path)?)?;
    }
    Ok(*hasher.finalize().as_bytes())
}

fn encode(states: &[FileState]) -> Vec<u8> {
    let len = 12 + states.iter().map(|s| FIXED + s.path.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(states.len() as u32).to_le_bytes());
    for s in states {
        out.extend_from_slice(&(s.path.len() as u32).to_le_bytes());
        out.extend_from_slice(s.path.as_bytes());
        out.push(s.kind as u8);
        out.push(if s.racy { RACY } else { 0 } | if s.unlisted { UNLISTED } else { 0 });
        out.extend_from_slice(&s.size.to_le_bytes());
        out.extend_from_slice(&s.mtime_ns.to_le_bytes());
        out.extend_from_slice(&s.hash);
    }
    out
}

/// The entries of a snapshot; `InvalidArg` for bytes that are not one.
pub fn decode(bytes: &[u8]) -> Result<Vec<FileState>> {
    let bad = || Error::InvalidArg("not a packcache fingerprint snapshot (truncated or foreign bytes)".into());
    let mut r = Reader(bytes);
    if r.take(4).ok_or_else(bad)? != MAGIC || r.u32().ok_or_else(bad)? != VERSION {
        return Err(bad());
    }
    let count = r.u32().ok_or_else(bad)? as usize;
    let mut out = Vec::with_capacity(count.min(bytes.len() / FIXED));
    for _ in 0..count {
        let path_len = r.u32().ok_or_else(bad)? as usize;
        let path = std::str::from_utf8(r.take(path_len).ok_or_else(bad)?).map_err(|_| bad())?.to_owned();
        let kind = match r.take(1).ok_or_else(bad)?[0] {
            0 => Kind::Missing,
            1 => Kind::File,
            2 => Kind::Directory,
            3 => Kind::Unreadable,
            _ => return Err(bad()),
        };
        let flags = r.take(1).ok_or_else(bad)?[0];
        let (racy, unlisted) = (flags & RACY != 0, flags & UNLISTED != 0);
        let size = u64::from_le_bytes(r.array().ok_or_else(bad)?);
        let mtime_ns = i64::from_le_bytes(r.array().ok_or_else(bad)?);
        let hash = r.array().ok_or_else(bad)?;
        out.push(FileState { path, kind, racy, unlisted, size, mtime_ns, hash });
    }
    if !r.0.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).map(|b| b.try_into().unwrap())
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn s(p: &Path) -> String {
        p.to_str().unwrap().to_owned()
    }

    #[test]
    fn snapshot_round_trips_and_records_content_hashes() {
        let dir = tmp();
        let file = dir.path().join("a.js");
        fs::write(&file, b"export default 1").unwrap();
        let bytes = snapshot(vec![s(&file), s(&dir.path().join("none")), s(dir.path())], true).unwrap();
        let states = decode(&bytes).unwrap();
        assert_eq!(states.len(), 3);
        assert_eq!(states[0].kind, Kind::File);
        assert_eq!(states[0].size, 16);
        assert_eq!(&states[0].hash, blake3::hash(b"export default 1").as_bytes());
        assert_eq!(states[1].kind, Kind::Missing);
        assert_eq!(states[2].kind, Kind::Directory);
        assert_eq!(&states[2].hash, blake3::hash(b"a.js\0").as_bytes());
    }

    #[test]
    fn only_edited_created_and_deleted_paths_are_changed() {
        let dir = tmp();
        let names = ["keep.js", "edit.js", "delete.js", "touch.js"];
        for n in names {
            fs::write(dir.path().join(n), n.as_bytes()).unwrap();
        }
        let mut paths: Vec<String> = names.iter().map(|n| s(&dir.path().join(n))).collect();
        paths.push(s(&dir.path().join("create.js")));
        let bytes = snapshot(paths, true).unwrap();
        assert_eq!(changed(&bytes).unwrap(), Vec::<u32>::new());
        fs::write(dir.path().join("edit.js"), b"tide.js").unwrap(); // same size
        fs::remove_file(dir.path().join("delete.js")).unwrap();
        fs::write(dir.path().join("touch.js"), b"touch.js").unwrap(); // same bytes, new mtime
        fs::write(dir.path().join("create.js"), b"new").unwrap();
        assert_eq!(changed(&bytes).unwrap(), vec![1, 2, 4]);
    }

    #[test]
    fn same_size_edit_with_restored_mtime_is_found_when_racy() {
        let dir = tmp();
        let file = dir.path().join("a.js");
        fs::write(&file, b"one").unwrap();
        let bytes = snapshot(vec![s(&file)], true).unwrap();
        assert!(decode(&bytes).unwrap()[0].racy, "written just now");
        let mtime = fs::metadata(&file).unwrap().modified().unwrap();
        fs::write(&file, b"two").unwrap();
        File::options().write(true).open(&file).unwrap().set_modified(mtime).unwrap();
        assert_eq!(changed(&bytes).unwrap(), vec![0]);
    }

    #[test]
    fn old_files_are_not_racy_and_cost_a_stat() {
        let dir = tmp();
        let file = dir.path().join("a.js");
        fs::write(&file, b"one").unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        File::options().write(true).open(&file).unwrap().set_modified(old).unwrap();
        let bytes = snapshot(vec![s(&file)], true).unwrap();
        assert!(!decode(&bytes).unwrap()[0].racy);
        // Same size and mtime: trusted without reading the content.
        fs::write(&file, b"two").unwrap();
        File::options().write(true).open(&file).unwrap().set_modified(old).unwrap();
        assert_eq!(changed(&bytes).unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn directory_listing_change_is_found_unless_unlisted() {
        let dir = tmp();
        let listed = snapshot(vec![s(dir.path())], true).unwrap();
        let unlisted = snapshot(vec![s(dir.path())], false).unwrap();
        assert!(decode(&unlisted).unwrap()[0].unlisted);
        fs::write(dir.path().join("added.js"), b"x").unwrap();
        assert_eq!(changed(&listed).unwrap(), vec![0]);
        assert_eq!(changed(&unlisted).unwrap(), Vec::<u32>::new(), "existence only");
        fs::remove_dir_all(dir.path()).unwrap();
        assert_eq!(changed(&unlisted).unwrap(), vec![0]);
    }

    #[test]
    fn relative_paths_and_foreign_bytes_are_rejected() {
        assert!(matches!(snapshot(vec!["src/a.js".into()], true), Err(Error::InvalidArg(_))));
        let good = snapshot(vec!["/nonexistent/packcache/x".into()], true).unwrap();
        for bad in [&b""[..], b"PCFP", &good[..good.len() - 1], b"PCFP\x02\0\0\0\0\0\0\0"] {
            assert!(matches!(changed(bad), Err(Error::InvalidArg(_))), "{bad:?}");
        }
        let mut extra = good.clone();
        extra.push(0);
        assert!(matches!(decode(&extra), Err(Error::InvalidArg(_))));
    }
}
