//! A file system that fails chosen operations, for fault-injection tests.
//! Every call through [`Fs`] is one numbered operation (a synced write counts
//! as a write and an fsync); operation `fail_at` fails, once or from then on.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::engine::fs::{Blob, DirEntry, Fs, LockGuard, RealFs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    Once,
    Persistent,
}

pub struct FaultFs {
    inner: RealFs,
    ops: AtomicU64,
    fail_at: AtomicU64,
    config: Mutex<(FaultMode, io::ErrorKind)>,
    fired: AtomicU64,
    /// Operations so far, by kind ("mmap", "write", ...).
    counts: Mutex<HashMap<&'static str, u64>>,
    /// Runs before each mapping of a file (say, a concurrent save).
    before_map: Mutex<Option<MapHook>>,
}

type MapHook = Box<dyn FnMut(&Path) + Send>;

impl FaultFs {
    /// A file system that does not fail until armed (but counts operations).
    pub fn healthy() -> Arc<FaultFs> {
        Arc::new(FaultFs {
            inner: RealFs,
            ops: AtomicU64::new(0),
            fail_at: AtomicU64::new(u64::MAX),
            config: Mutex::new((FaultMode::Once, io::ErrorKind::Other)),
            fired: AtomicU64::new(0),
            counts: Mutex::new(HashMap::new()),
            before_map: Mutex::new(None),
        })
    }

    /// Fails the operation `n` operations from now (and, if persistent, every later one).
    pub fn arm(&self, n: u64, mode: FaultMode, kind: io::ErrorKind) {
        *self.config.lock().unwrap() = (mode, kind);
        self.fail_at.store(self.ops() + n, Ordering::SeqCst);
    }

    /// Calls `hook` with the path before each mapping of a file.
    pub fn before_map(&self, hook: impl FnMut(&Path) + Send + 'static) {
        *self.before_map.lock().unwrap() = Some(Box::new(hook));
    }

    fn run_map_hook(&self, path: &Path) {
        if let Some(hook) = &mut *self.before_map.lock().unwrap() {
            hook(path);
        }
    }

    pub fn disarm(&self) {
        self.fail_at.store(u64::MAX, Ordering::SeqCst);
    }

    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }

    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::SeqCst)
    }

    /// How many operations of one kind ran (or were attempted) so far.
    pub fn count(&self, what: &str) -> u64 {
        self.counts.lock().unwrap().get(what).copied().unwrap_or(0)
    }

    fn op(&self, what: &'static str) -> io::Result<()> {
        *self.counts.lock().unwrap().entry(what).or_default() += 1;
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        let fail_at = self.fail_at.load(Ordering::SeqCst);
        let (mode, kind) = *self.config.lock().unwrap();
        let hit = match mode {
            FaultMode::Once => n == fail_at,
            FaultMode::Persistent => n >= fail_at,
        };
        if hit {
            self.fired.fetch_add(1, Ordering::SeqCst);
            return Err(io::Error::new(kind, format!("injected fault at operation {n} ({what})")));
        }
        Ok(())
    }
}

impl Fs for FaultFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.op("create_dir")?;
        self.inner.create_dir_all(path)
    }

    fn write_file(&self, path: &Path, data: &[&[u8]], sync: bool) -> io::Result<()> {
        self.op("write")?;
        if !sync {
            return self.inner.write_file(path, data, false);
        }
        // A failed fsync leaves the written file behind, as on a real system.
        self.inner.write_file(path, data, false)?;
        self.op("fsync")?;
        self.inner.sync_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.op("rename")?;
        self.inner.rename(from, to)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.op("link")?;
        self.inner.hard_link(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.op("remove")?;
        self.inner.remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.op("remove_dir")?;
        self.inner.remove_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.op("fsync_dir")?;
        self.inner.sync_dir(path)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.op("fsync")?;
        self.inner.sync_file(path)
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.op("read")?;
        self.inner.read_file(path)
    }

    fn map_file(&self, path: &Path) -> io::Result<Blob> {
        self.run_map_hook(path);
        self.op("mmap")?;
        self.inner.map_file(path)
    }

    fn map_file_whole(&self, path: &Path) -> io::Result<Blob> {
        self.run_map_hook(path);
        self.op("mmap")?;
        self.inner.map_file_whole(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        self.op("read_dir")?;
        self.inner.read_dir(path)
    }

    fn modified(&self, path: &Path) -> io::Result<Option<SystemTime>> {
        self.op("stat")?;
        self.inner.modified(path)
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        self.op("stat")?;
        self.inner.is_dir(path)
    }

    fn touch(&self, path: &Path) -> io::Result<()> {
        self.op("touch")?;
        self.inner.touch(path)
    }

    fn is_symlink(&self, path: &Path) -> io::Result<bool> {
        self.op("stat")?;
        self.inner.is_symlink(path)
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        self.op("lock")?;
        self.inner.lock(path)
    }

    fn lock_shared(&self, path: &Path, create: bool) -> io::Result<Option<Box<dyn LockGuard>>> {
        self.op("lock")?;
        self.inner.lock_shared(path, create)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>> {
        self.op("lock")?;
        self.inner.try_lock(path)
    }

    fn stamp(&self, path: &Path) -> io::Result<Option<crate::engine::fs::Stamp>> {
        self.op("stat")?;
        self.inner.stamp(path)
    }
}
