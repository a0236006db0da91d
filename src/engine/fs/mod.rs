//! Every disk access of the engine goes through [`Fs`], so tests can inject
//! faults or simulate power loss. [`RealFs`] is the production implementation.

#[cfg(any(test, feature = "testing"))]
pub mod fault;
#[cfg(any(test, feature = "testing"))]
pub mod sim;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Immutable bytes read from disk: a private mapping or an owned buffer.
pub type Blob = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A directory entry, typed without following a symlink: a link is
/// neither `is_dir` nor `is_file`.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
    /// A regular file.
    pub is_file: bool,
}

/// Files mapped back to back: all of them as one blob, and where each lies.
pub struct MappedGroup {
    pub blob: Blob,
    pub places: Vec<std::ops::Range<usize>>,
}

/// A held advisory lock; dropping it releases the lock.
pub trait LockGuard: Send {}

pub trait Fs: Send + Sync + 'static {
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates `path`, which must not exist (an existing file or symlink
    /// there is `AlreadyExists`: a link planted in the cache directory is
    /// never followed), writes the `parts` one after another, and fsyncs it
    /// when `sync`.
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
    /// `map_file_whole` of several files into one range of memory, each at
    /// a page boundary, so their bytes can be handed out as one buffer.
    /// `Ok(None)` where this file system or platform cannot.
    fn map_files_together(&self, _paths: &[PathBuf]) -> io::Result<Option<MappedGroup>> {
        Ok(None)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// `None` when nothing exists at `path`.
    fn modified(&self, path: &Path) -> io::Result<Option<SystemTime>>;
    fn is_dir(&self, path: &Path) -> io::Result<bool>;
    /// Sets the modification time of an existing file to now (not of a
    /// symlink's target: a link there is an error).
    fn touch(&self, path: &Path) -> io::Result<()>;
    /// Whether `path` itself is a symbolic link.
    fn is_symlink(&self, _path: &Path) -> io::Result<bool> {
        Ok(false)
    }
    /// Blocks until an exclusive advisory lock on `path` (created if
    /// missing; a symlink there is an error, never followed) is held.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>>;
    /// `Ok(None)` when another holder has the lock.
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>>;
    /// Blocks until a shared advisory lock on the file at `path` is held
    /// (created if missing when `create`; a symlink there is an error).
    /// `Ok(None)` when there is no file (and `!create`), or when the file
    /// was deleted while the lock was awaited: a lock on it guards nothing.
    fn lock_shared(&self, _path: &Path, _create: bool) -> io::Result<Option<Box<dyn LockGuard>>> {
        Ok(None)
    }
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

/// Opens `path` without following a symlink in its last component (unix;
/// elsewhere links are not planted by unprivileged users).
fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(options, libc::O_NOFOLLOW);
    options
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    no_follow(OpenOptions::new().read(true).write(true).create(true).truncate(false)).open(path)
}

impl Fs for RealFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn write_file(&self, path: &Path, parts: &[&[u8]], sync: bool) -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
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

    #[cfg(unix)]
    fn map_files_together(&self, paths: &[PathBuf]) -> io::Result<Option<MappedGroup>> {
        group::map(paths).map(Some)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            let kind = entry.file_type().ok();
            let is_dir = kind.is_some_and(|t| t.is_dir());
            let is_file = kind.is_some_and(|t| t.is_file());
            out.push(DirEntry { name, is_dir, is_file });
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
        let file = match no_follow(OpenOptions::new().write(true)).open(path) {
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => no_follow(OpenOptions::new().read(true)).open(path)?,
            other => other?,
        };
        file.set_modified(SystemTime::now())
    }

    fn lock_shared(&self, path: &Path, create: bool) -> io::Result<Option<Box<dyn LockGuard>>> {
        let mut options = OpenOptions::new();
        options.read(true).write(create).create(create).truncate(false);
        let file = match no_follow(&mut options).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) => return Err(e),
        };
        file.lock_shared()?;
        Ok(is_at(&file, path)?.then(|| Box::new(FileLock(file)) as Box<dyn LockGuard>))
    }

    fn is_symlink(&self, path: &Path) -> io::Result<bool> {
        match fs::symlink_metadata(path) {
            Ok(meta) => Ok(meta.file_type().is_symlink()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
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

/// Whether `file` is still the file at `path` (not deleted or replaced).
fn is_at(file: &File, path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (held, named) = match (file.metadata(), fs::symlink_metadata(path)) {
            (Ok(held), Ok(named)) => (held, named),
            (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        Ok(held.ino() == named.ino() && held.dev() == named.dev())
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        Ok(true)
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

/// One reservation of address space with files mapped into it (unix).
#[cfg(unix)]
mod group {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::MappedGroup;

    struct Reserved {
        ptr: *mut u8,
        len: usize,
    }

    // SAFETY: the memory is only read after `map` returns (JS may write to
    // its private pages, as with any pack mapping); it lives until drop.
    unsafe impl Send for Reserved {}
    // SAFETY: as for `Send`: shared reads of memory nobody else writes.
    unsafe impl Sync for Reserved {}

    impl AsRef<[u8]> for Reserved {
        fn as_ref(&self) -> &[u8] {
            // SAFETY: every page of the range is a file page (the tail of a
            // file's last page reads as zeros), mapped until drop.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }

    impl Drop for Reserved {
        fn drop(&mut self) {
            // SAFETY: the range is this reservation's, unmapped once.
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
        }
    }

    fn failed<T>() -> io::Result<T> {
        Err(io::Error::last_os_error())
    }

    /// Reserves room for all files, then maps each privately over its part
    /// (`MAP_FIXED` inside our own reservation replaces nothing else).
    pub fn map(paths: &[PathBuf]) -> io::Result<MappedGroup> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
        let files = paths.iter().map(File::open).collect::<io::Result<Vec<File>>>()?;
        let mut places = Vec::with_capacity(files.len());
        let mut end = 0usize;
        for file in &files {
            let len = usize::try_from(file.metadata()?.len()).map_err(io::Error::other)?;
            if len == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "an empty file cannot be mapped"));
            }
            places.push(end..end + len);
            end = (end + len).div_ceil(page) * page;
        }
        // SAFETY: a fresh anonymous reservation; checked for failure.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), end, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANON, -1, 0)
        };
        if base == libc::MAP_FAILED {
            return failed();
        }
        let reserved = Reserved { ptr: base.cast(), len: end };
        for (file, place) in files.iter().zip(&places) {
            // SAFETY: `place` lies inside the reservation; pack files are
            // immutable (see `map_private`); the mapping is private.
            let at = unsafe { reserved.ptr.add(place.start) };
            let prot = libc::PROT_READ | libc::PROT_WRITE;
            let flags = libc::MAP_PRIVATE | libc::MAP_FIXED;
            // SAFETY: maps the file over `place`, inside our reservation
            // (MAP_FIXED replaces only our own PROT_NONE pages); checked below.
            let got = unsafe { libc::mmap(at.cast(), place.len(), prot, flags, file.as_raw_fd(), 0) };
            if got == libc::MAP_FAILED {
                return failed(); // `reserved` unmaps everything
            }
            // SAFETY: a hint on the mapping just made; failure changes nothing.
            unsafe { libc::madvise(got, place.len(), libc::MADV_WILLNEED) };
        }
        Ok(MappedGroup { blob: Arc::new(reserved), places })
    }
}
