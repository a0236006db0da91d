//! An in-memory file system that tracks what a power loss would keep, for
//! crash tests. File contents become durable on a synced write; directory
//! entries (creates, renames, removes) become durable on `sync_dir` of their
//! directory. Directories themselves are assumed durable once created.
//!
//! `crash_image` derives the state after a power loss: only durable data, or
//! durable data plus a random subset of the rest, or everything with the last
//! unsynced write torn.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::engine::fs::{Blob, DirEntry, Fs, LockGuard};

#[derive(Clone)]
struct Inode {
    data: Arc<Vec<u8>>,
    /// Content as of the last fsync; `None` = never synced (empty after a crash).
    durable: Option<Arc<Vec<u8>>>,
}

#[derive(Clone, Debug)]
enum NsOp {
    Link(PathBuf, usize),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf, usize),
}

impl NsOp {
    fn dir(&self) -> Option<&Path> {
        match self {
            NsOp::Link(p, _) | NsOp::Unlink(p) | NsOp::Rename(_, p, _) => p.parent(),
        }
    }

    fn apply(&self, ns: &mut BTreeMap<PathBuf, usize>) {
        match self {
            NsOp::Link(p, id) => {
                ns.insert(p.clone(), *id);
            }
            NsOp::Unlink(p) => {
                ns.remove(p);
            }
            NsOp::Rename(from, to, id) => {
                ns.remove(from);
                ns.insert(to.clone(), *id);
            }
        }
    }
}

#[derive(Clone, Default)]
struct State {
    inodes: Vec<Inode>,
    current: BTreeMap<PathBuf, usize>,
    durable: BTreeMap<PathBuf, usize>,
    pending: Vec<NsOp>,
    dirs: BTreeSet<PathBuf>,
    last_unsynced_write: Option<usize>,
    /// Operations left before the simulated power loss; `None` = no crash planned.
    ops_left: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
pub enum CrashKind {
    /// Only what was fsynced survives.
    SyncedOnly,
    /// Each unsynced directory change and each unsynced file survives or not.
    RandomSubset(u64),
    /// Every change survives, but the last unsynced write is cut short.
    TornLastWrite(u64),
}

#[derive(Default)]
pub struct SimFs {
    state: Mutex<State>,
}

struct NoLock;
impl LockGuard for NoLock {}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", p.display()))
}

/// xorshift64*, enough to pick subsets reproducibly.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    seed.wrapping_mul(0x2545F4914F6CDD1D)
}

impl SimFs {
    pub fn new() -> Arc<SimFs> {
        Arc::new(SimFs::default())
    }

    /// Power is lost after `n` more operations: they and all later ones fail.
    pub fn crash_after(&self, n: u64) {
        self.state.lock().unwrap().ops_left = Some(n);
    }

    pub fn crashed(&self) -> bool {
        self.state.lock().unwrap().ops_left == Some(0)
    }

    /// Makes everything durable, as a clean shutdown with a full sync would.
    pub fn sync_all(&self) {
        let mut s = self.state.lock().unwrap();
        for inode in &mut s.inodes {
            inode.durable = Some(inode.data.clone());
        }
        s.durable = s.current.clone();
        s.pending.clear();
        s.last_unsynced_write = None;
    }

    /// The file system as found after a power loss now.
    pub fn crash_image(&self, kind: CrashKind) -> Arc<SimFs> {
        let s = self.state.lock().unwrap();
        let mut image = State { dirs: s.dirs.clone(), inodes: s.inodes.clone(), ..State::default() };
        let mut ns = s.durable.clone();
        let (mut seed, keep_all) = match kind {
            CrashKind::SyncedOnly => (1, false),
            CrashKind::RandomSubset(seed) => (seed | 1, false),
            CrashKind::TornLastWrite(seed) => (seed | 1, true),
        };
        for op in &s.pending {
            let keep = match kind {
                CrashKind::SyncedOnly => false,
                _ => keep_all || next(&mut seed) % 2 == 0,
            };
            if keep {
                op.apply(&mut ns);
            }
        }
        for (id, inode) in image.inodes.iter_mut().enumerate() {
            let synced = inode.durable.as_ref().is_some_and(|d| Arc::ptr_eq(d, &inode.data));
            if synced {
                continue;
            }
            let survives = match kind {
                CrashKind::SyncedOnly => false,
                CrashKind::RandomSubset(_) => next(&mut seed) % 2 == 0,
                CrashKind::TornLastWrite(_) => true,
            };
            let mut data =
                if survives { (*inode.data).clone() } else { inode.durable.as_deref().cloned().unwrap_or_default() };
            if matches!(kind, CrashKind::TornLastWrite(_)) && s.last_unsynced_write == Some(id) && !data.is_empty() {
                data.truncate((next(&mut seed) % data.len() as u64) as usize);
            }
            inode.data = Arc::new(data);
            inode.durable = Some(inode.data.clone());
        }
        image.current = ns.clone();
        image.durable = ns;
        Arc::new(SimFs { state: Mutex::new(image) })
    }

    fn op(&self) -> io::Result<std::sync::MutexGuard<'_, State>> {
        let mut s = self.state.lock().unwrap();
        match s.ops_left {
            Some(0) => return Err(io::Error::other("simulated power loss")),
            Some(n) => s.ops_left = Some(n - 1),
            None => {}
        }
        Ok(s)
    }

    fn record(s: &mut State, op: NsOp) {
        op.apply(&mut s.current);
        s.pending.push(op);
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        for dir in path.ancestors() {
            s.dirs.insert(dir.to_path_buf());
        }
        Ok(())
    }

    fn write_file(&self, path: &Path, parts: &[&[u8]], sync: bool) -> io::Result<()> {
        let data = parts.concat();
        let mut s = self.op()?;
        if !path.parent().is_some_and(|p| s.dirs.contains(p)) {
            return Err(not_found(path));
        }
        let data = Arc::new(data);
        let durable = sync.then(|| data.clone());
        s.inodes.push(Inode { data, durable });
        let id = s.inodes.len() - 1;
        s.last_unsynced_write = if sync { s.last_unsynced_write } else { Some(id) };
        Self::record(&mut s, NsOp::Link(path.to_path_buf(), id));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        let id = *s.current.get(from).ok_or_else(|| not_found(from))?;
        Self::record(&mut s, NsOp::Rename(from.to_path_buf(), to.to_path_buf(), id));
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        let id = *s.current.get(from).ok_or_else(|| not_found(from))?;
        if s.current.contains_key(to) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", to.display())));
        }
        Self::record(&mut s, NsOp::Link(to.to_path_buf(), id));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        if !s.current.contains_key(path) {
            return Err(not_found(path));
        }
        Self::record(&mut s, NsOp::Unlink(path.to_path_buf()));
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        let doomed: Vec<PathBuf> = s.current.keys().filter(|p| p.starts_with(path)).cloned().collect();
        for p in doomed {
            Self::record(&mut s, NsOp::Unlink(p));
        }
        s.dirs.retain(|d| !d.starts_with(path));
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        let (now, later): (Vec<NsOp>, Vec<NsOp>) =
            std::mem::take(&mut s.pending).into_iter().partition(|op| op.dir() == Some(path));
        for op in &now {
            op.apply(&mut s.durable);
        }
        s.pending = later;
        Ok(())
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.op()?;
        let id = *s.current.get(path).ok_or_else(|| not_found(path))?;
        let inode = &mut s.inodes[id];
        inode.durable = Some(inode.data.clone());
        if s.last_unsynced_write == Some(id) {
            s.last_unsynced_write = None;
        }
        Ok(())
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let s = self.op()?;
        let id = *s.current.get(path).ok_or_else(|| not_found(path))?;
        Ok((*s.inodes[id].data).clone())
    }

    fn map_file(&self, path: &Path) -> io::Result<Blob> {
        Ok(Arc::new(self.read_file(path)?))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let s = self.op()?;
        if !s.dirs.contains(path) {
            return Err(not_found(path));
        }
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        let files = s.current.keys().filter(|p| p.parent() == Some(path)).filter_map(|p| name(p));
        let mut out: Vec<DirEntry> = files.map(|name| DirEntry { name, is_dir: false, is_file: true }).collect();
        let dirs = s.dirs.iter().filter(|d| d.parent() == Some(path)).filter_map(|d| name(d));
        out.extend(dirs.map(|name| DirEntry { name, is_dir: true, is_file: false }));
        Ok(out)
    }

    fn modified(&self, path: &Path) -> io::Result<Option<SystemTime>> {
        let s = self.op()?;
        let exists = s.current.contains_key(path) || s.dirs.contains(path);
        Ok(exists.then(SystemTime::now))
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        Ok(self.op()?.dirs.contains(path))
    }

    fn touch(&self, path: &Path) -> io::Result<()> {
        let s = self.op()?;
        if s.current.contains_key(path) {
            Ok(())
        } else {
            Err(not_found(path))
        }
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        let mut s = self.op()?;
        if !path.parent().is_some_and(|p| s.dirs.contains(p)) {
            return Err(not_found(path));
        }
        // Like a real lock file, created empty when missing.
        if !s.current.contains_key(path) {
            s.inodes.push(Inode { data: Arc::new(Vec::new()), durable: None });
            let id = s.inodes.len() - 1;
            Self::record(&mut s, NsOp::Link(path.to_path_buf(), id));
        }
        Ok(Box::new(NoLock))
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>> {
        self.lock(path).map(Some)
    }
}

impl SimFs {
    /// An independent copy of the current state.
    pub fn duplicate(&self) -> Arc<SimFs> {
        Arc::new(SimFs { state: Mutex::new(self.state.lock().unwrap().clone()) })
    }

    pub fn files(&self) -> Vec<PathBuf> {
        self.state.lock().unwrap().current.keys().cloned().collect()
    }

    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state.lock().unwrap();
        s.current.get(path).map(|&id| (*s.inodes[id].data).clone())
    }

    /// Replaces a file's bytes in place (same directory entry), as bit rot would.
    pub fn overwrite(&self, path: &Path, data: Vec<u8>) {
        let mut s = self.state.lock().unwrap();
        let id = s.current[path];
        let data = Arc::new(data);
        s.inodes[id] = Inode { durable: Some(data.clone()), data };
    }
}
