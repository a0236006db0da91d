//! The state that reads and writes of one store share: its options, file
//! system and directory, the cached manifest, the packs `get` keeps open,
//! the packs found damaged, and the store's stage files. `read`, `write`
//! and `gc` work on a [`Core`]; the [`Store`](crate::engine::Store) owns
//! one, beside the unsaved updates and the save queue.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::engine::error::{Error, Result};
use crate::engine::fs::{Blob, Fs, Stamp};
use crate::engine::layout::{self, MANIFEST_NAME};
use crate::engine::manifest::{self, Manifest, PackMeta};
use crate::engine::pack::reader::{PackView, Verify};
use crate::engine::pack::writer::Compression;
use crate::engine::unsaved::stage::Spill;

/// A reader that finds a pack of its manifest missing reads the manifest
/// again: if it changed, a concurrent save deleted the pack and the read
/// starts over on the new one; only a pack missing from an unchanged
/// manifest is missing for real (GC deletes only packs the newest committed
/// manifest does not name). This bounds the start-overs, each of which
/// needs another commit; no reader meets it in practice.
pub(crate) const MAX_START_OVERS: usize = 100_000;

#[derive(Debug, Clone)]
pub struct Options {
    pub root: PathBuf,
    pub version: String,
    pub compression: Compression,
    /// Target raw bytes per pack.
    pub pack_size: u64,
    /// Other versions unused for longer are deleted by `save`; `None` keeps them.
    pub expire: Option<Duration>,
    pub fsync: bool,
    pub readonly: bool,
}

impl Options {
    pub fn new(root: impl Into<PathBuf>, version: impl Into<String>) -> Options {
        Options {
            root: root.into(),
            version: version.into(),
            compression: DEFAULT_COMPRESSION,
            pack_size: DEFAULT_PACK_SIZE,
            expire: Some(DEFAULT_EXPIRE),
            fsync: false,
            readonly: false,
        }
    }
}

/// The default codec, chosen by `npm run bench` (bench/README, "Codecs"):
/// against zstd level 1, LZ4 loads in 0.79× and saves in 0.82× the time for
/// 1.33× the disk (0.45× the raw bytes).
pub const DEFAULT_COMPRESSION: Compression = Compression::Lz4;
/// zstd's level when `compression` is zstd and no level is given.
pub const DEFAULT_LEVEL: i32 = 1;
pub const DEFAULT_PACK_SIZE: u64 = 4 * 1024 * 1024;
pub const DEFAULT_EXPIRE: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MAX_KEY_LEN: usize = 1 << 30;

/// Scope names are 1–128 characters of `[A-Za-z0-9_.-]`, not `.` or `..`.
pub fn validate_scope(scope: &str) -> Result<()> {
    let ok_chars = scope.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if scope.is_empty() || scope.len() > 128 || !ok_chars || scope == "." || scope == ".." {
        let shown: String = scope.chars().take(40).collect();
        return Err(Error::InvalidArg(format!(
            "scope name {shown:?} must be 1-128 characters of [A-Za-z0-9_.-] and not '.' or '..'"
        )));
    }
    Ok(())
}

pub(crate) fn validate_key(key: &[u8]) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::InvalidArg(format!("key of {} bytes exceeds the limit of 1 GiB", key.len())));
    }
    Ok(())
}

pub(crate) struct CachedManifest {
    pub(crate) stamp: Option<Stamp>,
    pub(crate) bytes: Vec<u8>,
    pub(crate) decoded: Arc<Manifest>,
}

pub struct Core {
    pub(crate) opts: Options,
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) dir: PathBuf,
    /// Packs a load found corrupt: the next save drops their scopes.
    pub(crate) corrupt_packs: Mutex<HashSet<[u8; 32]>>,
    /// Fully verified packs that `get` has opened, by id.
    pub(crate) views: Mutex<HashMap<[u8; 32], Arc<PackView>>>,
    /// The last manifest read: its exact bytes and their decoding.
    pub(crate) manifest_cache: Mutex<Option<CachedManifest>>,
    closed: AtomicBool,
    touched: AtomicBool,
    /// Newest committed generation seen (for the header of staged packs).
    seen_generation: AtomicU64,
    /// Stage files of packs encoded before their save (not when readonly).
    spill: Option<Arc<Spill>>,
}

impl Core {
    pub(crate) fn open(mut opts: Options, fs: Arc<dyn Fs>) -> Result<Core> {
        // Resolved once: a later `process.chdir()` must not move the cache
        // (nor strand the stage files already written under the old path).
        opts.root = std::path::absolute(&opts.root).map_err(|e| Error::io("resolve", &opts.root, e))?;
        if opts.version.len() > 4096 {
            return Err(Error::InvalidArg("version must be at most 4096 bytes".into()));
        }
        if opts.pack_size == 0 {
            return Err(Error::InvalidArg("packSize must be positive".into()));
        }
        if let Compression::Zstd(level) = opts.compression {
            let range = zstd::compression_level_range();
            if !range.contains(&level) {
                return Err(Error::InvalidArg(format!(
                    "compressionLevel {level} is outside {}..={}",
                    range.start(),
                    range.end()
                )));
            }
        }
        if !opts.readonly {
            fs.create_dir_all(&opts.root).map_err(|e| Error::io("create directory", &opts.root, e))?;
        }
        let is_dir = fs.is_dir(&opts.root).map_err(|e| Error::io("stat", &opts.root, e))?;
        let exists = fs.modified(&opts.root).map_err(|e| Error::io("stat", &opts.root, e))?.is_some();
        if exists && !is_dir {
            return Err(Error::io(
                "open",
                &opts.root,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "root is not a directory"),
            ));
        }
        let dir = opts.root.join(layout::version_dir_name(&opts.version));
        let spill = (!opts.readonly).then(|| Arc::new(Spill::new(fs.clone(), &dir)));
        Ok(Core {
            opts,
            fs,
            dir,
            corrupt_packs: Mutex::new(HashSet::new()),
            views: Mutex::new(HashMap::new()),
            manifest_cache: Mutex::new(None),
            closed: AtomicBool::new(false),
            touched: AtomicBool::new(false),
            seen_generation: AtomicU64::new(0),
            spill,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Refuses new work from now on.
    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Drops the open packs and the cached manifest.
    pub(crate) fn release_caches(&self) {
        self.views.lock().unwrap().clear();
        *self.manifest_cache.lock().unwrap() = None;
    }

    /// The generation the next staged pack is expected to commit in.
    pub(crate) fn next_generation(&self) -> u64 {
        self.seen_generation.load(Ordering::Relaxed) + 1
    }

    /// Notes the newest committed generation this instance has seen.
    pub(crate) fn saw_generation(&self, generation: u64) {
        self.seen_generation.fetch_max(generation, Ordering::Relaxed);
    }

    /// The committed manifest, or an empty one when none exists yet. Another
    /// process may have committed since the last call, so the file is checked
    /// every time: not re-read while its stamp (length, mtime, inode; a commit
    /// renames a new file into place) is unchanged, not re-decoded while its
    /// bytes are.
    pub(crate) fn read_manifest(&self) -> Result<Arc<Manifest>> {
        let path = self.dir.join(MANIFEST_NAME);
        let stamp = self.fs.stamp(&path).map_err(|e| Error::io("stat", &path, e))?;
        if let (Some(now), Some(cached)) = (stamp, &*self.manifest_cache.lock().unwrap()) {
            if cached.stamp == Some(now) {
                return Ok(cached.decoded.clone());
            }
        }
        let Some(bytes) = manifest::read_raw(&*self.fs, &self.dir)? else {
            return Ok(Arc::new(Manifest::default()));
        };
        if let Some(cached) = &mut *self.manifest_cache.lock().unwrap() {
            if cached.bytes == bytes {
                cached.stamp = stamp;
                return Ok(cached.decoded.clone());
            }
        }
        let decoded = Arc::new(Manifest::decode(&bytes)?);
        self.saw_generation(decoded.generation);
        // Packs another process has dropped must not stay mapped here (their
        // disk space is only freed once nobody maps them).
        let live: HashSet<[u8; 32]> = decoded.scopes.iter().flat_map(|s| s.packs.iter().map(|p| p.id)).collect();
        self.views.lock().unwrap().retain(|id, _| live.contains(id));
        *self.manifest_cache.lock().unwrap() = Some(CachedManifest { stamp, bytes, decoded: decoded.clone() });
        Ok(decoded)
    }

    pub(crate) fn note_damage(&self, meta: &PackMeta, e: &Error, final_attempt: bool) {
        self.note_damage_of(meta.id, e, final_attempt);
    }

    pub(crate) fn note_damage_of(&self, id: [u8; 32], e: &Error, final_attempt: bool) {
        if matches!(e, Error::Corrupted { .. }) || (final_attempt && e.is_not_found()) {
            self.corrupt_packs.lock().unwrap().insert(id);
        }
    }

    /// Marks this version as used, for other instances' expiry (once per instance).
    pub(crate) fn touch_once(&self) {
        if !self.opts.readonly
            && !self.touched.swap(true, Ordering::AcqRel)
            && layout::check_not_link(&*self.fs, &self.dir).is_ok()
        {
            let _ = self.fs.touch(&self.dir.join(MANIFEST_NAME));
        }
    }

    /// Runs `read` on the committed manifest, again on each newer one while
    /// it fails because a pack is missing and the manifest keeps changing
    /// (see `MAX_START_OVERS`). `read` learns when its try is the last.
    pub(crate) fn with_current_manifest<T>(
        &self,
        mut read: impl FnMut(&Arc<Manifest>, bool) -> Result<T>,
    ) -> Result<T> {
        let mut manifest = self.read_manifest()?;
        for _ in 0..MAX_START_OVERS {
            match read(&manifest, false) {
                Err(e) if e.is_not_found() => {
                    let newer = self.read_manifest()?;
                    if Arc::ptr_eq(&newer, &manifest) || *newer == *manifest {
                        break; // unchanged: the pack is missing for real
                    }
                    manifest = newer;
                }
                other => return other,
            }
        }
        read(&manifest, true)
    }

    /// Maps and opens a pack the manifest lists, checked against its entry.
    pub(crate) fn open_pack(&self, meta: &PackMeta, verify: Verify) -> Result<PackView> {
        let path = self.dir.join(meta.file_name());
        let blob = match verify {
            Verify::Full => self.fs.map_file_whole(&path),
            Verify::OnRead | Verify::IndexOnly => self.fs.map_file(&path),
        };
        view_of(blob.map_err(|e| Error::io("open", &path, e))?, meta, verify)
    }

    /// This store's stage files, if it may have any.
    pub(crate) fn spill(&self) -> Option<&Arc<Spill>> {
        self.spill.as_ref()
    }

    pub(crate) fn forget_views(&self) {
        self.views.lock().unwrap().clear();
    }
}

/// Opens a mapped pack and checks it against its manifest entry.
pub(crate) fn view_of(blob: Blob, meta: &PackMeta, verify: Verify) -> Result<PackView> {
    let view = PackView::open(blob, &meta.id, verify)?;
    if view.len() != meta.items as usize {
        return Err(Error::corrupted("pack item count differs from the manifest"));
    }
    Ok(view)
}

pub(crate) fn missing_as_corrupt(e: Error) -> Error {
    match e {
        Error::Io { path, source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Error::corrupted(format!("pack {} is missing", path.display()))
        }
        other => other,
    }
}
