//! Every disk access of the engine goes through [`Fs`], so tests can inject
//! faults or simulate power loss. [`RealFs`] is the production implementation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// Immutable bytes read from disk: a private mapping or an owned buffer.
pub type Blob = Arc<dyn AsRef<[u8]> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
}

/// A held advisory lock; dropping it releases the lock.
pub trait LockGuard: Send {}

pub trait Fs: Send + Sync + 'static {
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates (or truncates) `path`, writes the `parts` one after another,
    /// and fsyncs it when `sync`.
    fn write_file(&self, path: &Path, parts: &[&[u8]], sync: bool) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Gives the file at `from` a second name `to` (which must not exist).
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Makes the data of the file at `path` durable (fsync).
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Maps `path` privately (copy-on-write): writes to the memory never reach the file.
    fn map_file(&self, path: &Path) -> io::Result<Blob>;
    /// `map_file` for a caller about to read all of the file: the OS may
    /// start reading it in now, so a cold load reads packs in parallel
    /// rather than one page fault at a time.
    fn map_file_whole(&self, path: &Path) -> io::Result<Blob> {
        self.map_file(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// `None` when nothing exists at `path`.
    fn modified(&self, path: &Path) -> io::Result<Option<SystemTime>>;
    fn is_dir(&self, path: &Path) -> io::Result<bool>;
    /// Sets the modification time of an existing file to now.
    fn touch(&self, path: &Path) -> io::Result<()>;
    /// Blocks until an exclusive advisory lock on `path` (created if missing) is held.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>>;
    /// `Ok(None)` when another holder has the lock.
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>>;
    /// Identity of the file now at `path` (changes whenever it is replaced),
    /// so a reader can skip re-reading an unchanged manifest. `None`: unknown.
    fn stamp(&self, _path: &Path) -> io::Result<Option<Stamp>> {
        Ok(None)
    }
}

/// Length, modification time and file id (inode) of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub len: u64,
    pub modified: SystemTime,
    pub id: u64,
}

pub struct RealFs;

struct FileLock(#[allow(dead_code)] File);
impl LockGuard for FileLock {}

fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

impl Fs for RealFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn write_file(&self, path: &Path, parts: &[&[u8]], sync: bool) -> io::Result<()> {
        let mut file = File::create(path)?;
        for part in parts {
            file.write_all(part)?;
        }
        if sync {
            file.sync_all()?;
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::hard_link(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            File::open(path)?.sync_all()
        }
        #[cfg(not(unix))]
        {
            let _ = path; // directories cannot be opened for sync on Windows; renames are durable there
            Ok(())
        }
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        // Write access: Windows flushes only handles that may write.
        OpenOptions::new().write(true).open(path)?.sync_all()
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        File::open(path)?.read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn map_file(&self, path: &Path) -> io::Result<Blob> {
        map_private(path, false)
    }

    fn map_file_whole(&self, path: &Path) -> io::Result<Blob> {
        map_private(path, true)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            out.push(DirEntry { name, is_dir });
        }
        Ok(out)
    }

    fn modified(&self, path: &Path) -> io::Result<Option<SystemTime>> {
        match fs::metadata(path) {
            Ok(meta) => Ok(Some(meta.modified()?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        match fs::metadata(path) {
            Ok(meta) => Ok(meta.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn touch(&self, path: &Path) -> io::Result<()> {
        OpenOptions::new().write(true).open(path)?.set_modified(SystemTime::now())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        let file = open_lock_file(path)?;
        file.lock()?;
        Ok(Box::new(FileLock(file)))
    }

    fn stamp(&self, path: &Path) -> io::Result<Option<Stamp>> {
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        #[cfg(unix)]
        let id = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let id = return Ok(None); // no stable file id: always re-read
        Ok(Some(Stamp { len: meta.len(), modified: meta.modified()?, id }))
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>> {
        let file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(FileLock(file)))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

fn map_private(path: &Path, whole: bool) -> io::Result<Blob> {
    let file = File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(Arc::new(Vec::<u8>::new()));
    }
    // SAFETY: pack files are immutable once renamed into place and are only
    // ever unlinked, never truncated, by packcache. The mapping is private
    // and writable: values are handed to JS as Buffers over it, and a JS
    // write must land in a private page, not fault or reach the file.
    let map = unsafe { memmap2::MmapOptions::new().map_copy(&file)? };
    #[cfg(unix)]
    if whole {
        let _ = map.advise(memmap2::Advice::WillNeed); // a hint: failure changes nothing
    }
    #[cfg(not(unix))]
    let _ = whole;
    Ok(Arc::new(map))
}
