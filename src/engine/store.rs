//! The public face of the engine: one [`Store`] per open cache directory and
//! version. Loads read the committed manifest plus this instance's unsaved
//! updates; saves are queued in call order and committed under a file lock.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::bloom;
use super::error::{Error, Result};
use super::format::{is_lower_hex, BLOCK_SIZE};
use super::fs::{Blob, Fs, LockGuard, Stamp};
use super::manifest::{self, Manifest, PackMeta};
use super::reader::{PackView, Verify};
use super::stage::{Spill, StageConfig};
use super::updates::{Batch, Overlay, Pending};
use super::writer::Compression;

/// A reader that finds a pack of its manifest missing reads the manifest
/// again: if it changed, a concurrent save deleted the pack and the read
/// starts over on the new one; only a pack missing from an unchanged
/// manifest is missing for real (GC deletes only packs the newest committed
/// manifest does not name). This bounds the start-overs, each of which
/// needs another commit; no reader meets it in practice.
pub(crate) const MAX_START_OVERS: usize = 100_000;
/// Reads of unsaved values retried when a concurrent `set` replaced them
/// between looking a key up and reading its value.
pub(crate) const STALE_RETRIES: usize = 1000;

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
            compression: Compression::Zstd(DEFAULT_LEVEL),
            pack_size: DEFAULT_PACK_SIZE,
            expire: Some(DEFAULT_EXPIRE),
            fsync: false,
            readonly: false,
        }
    }
}

pub const DEFAULT_LEVEL: i32 = 1;
pub const DEFAULT_PACK_SIZE: u64 = 4 * 1024 * 1024;
pub const DEFAULT_EXPIRE: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MAX_KEY_LEN: usize = 1 << 30;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveStats {
    pub generation: u64,
    pub packs_written: u32,
    pub bytes_written: u64,
    pub items_written: u64,
    pub packs_removed: u32,
    pub versions_expired: u32,
}

struct CachedManifest {
    stamp: Option<Stamp>,
    bytes: Vec<u8>,
    decoded: Arc<Manifest>,
}

pub struct Store {
    pub(crate) opts: Options,
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) dir: PathBuf,
    pending: Pending,
    /// Batches handed to `save`/`reset` and not yet finished, in call order.
    inflight: Mutex<Vec<Arc<Batch>>>,
    next_seq: AtomicU64,
    /// Sequence number of the batch whose turn it is to commit.
    turn: Mutex<u64>,
    turn_cv: Condvar,
    /// Packs a load found corrupt: the next save drops their scopes.
    pub(crate) corrupt_packs: Mutex<HashSet<[u8; 32]>>,
    /// Fully verified packs that `get` has opened, by id.
    views: Mutex<HashMap<[u8; 32], Arc<PackView>>>,
    /// The last manifest read: its exact bytes and their decoding.
    manifest_cache: Mutex<Option<CachedManifest>>,
    closed: AtomicBool,
    touched: AtomicBool,
    /// A shared lock on the version's `USERS` file while this store is
    /// open: expiry deletes a version only when it can lock that file
    /// exclusively, so no version in use anywhere is deleted.
    users: Mutex<Option<Box<dyn LockGuard>>>,
    /// Newest committed generation seen (for the header of staged packs).
    seen_generation: AtomicU64,
    /// Stage files of packs encoded before their save (not when readonly).
    spill: Option<Arc<Spill>>,
}

/// Directory of one version under the root: the version string is hashed, so
/// no version can name a path outside the root. The prefix names the on-disk
/// format (`pc2`: packs of format 2), so a release that changes it starts
/// afresh beside the old directory instead of reading packs it cannot.
pub fn version_dir_name(version: &str) -> String {
    format!("pc2-{}", &blake3::hash(version.as_bytes()).to_hex()[..32])
}

/// Names of version directories of this format and of older ones (`pc1-`),
/// which expire like unused versions.
pub fn is_version_dir_name(name: &str) -> bool {
    name.len() == 36
        && (name.starts_with("pc1-") || name.starts_with("pc2-"))
        && is_lower_hex(&name[4..])
}

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

fn validate_key(key: &[u8]) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::InvalidArg(format!("key of {} bytes exceeds the limit of 1 GiB", key.len())));
    }
    Ok(())
}

impl Store {
    pub fn open(mut opts: Options, fs: Arc<dyn Fs>) -> Result<Store> {
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
        let dir = opts.root.join(version_dir_name(&opts.version));
        let spill = (!opts.readonly).then(|| Arc::new(Spill::new(fs.clone(), &dir)));
        let users = Mutex::new(hold_version(&*fs, &dir, opts.readonly));
        Ok(Store {
            opts,
            fs,
            dir,
            pending: Pending::default(),
            inflight: Mutex::new(Vec::new()),
            next_seq: AtomicU64::new(0),
            turn: Mutex::new(0),
            turn_cv: Condvar::new(),
            corrupt_packs: Mutex::new(HashSet::new()),
            views: Mutex::new(HashMap::new()),
            manifest_cache: Mutex::new(None),
            closed: AtomicBool::new(false),
            touched: AtomicBool::new(false),
            seen_generation: AtomicU64::new(0),
            spill,
            users,
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

    /// Records `value` for `key` (copied into the scope's staging chunk).
    pub fn set(&self, scope: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.update(scope, key, Some(value))
    }

    pub fn remove(&self, scope: &str, key: &[u8]) -> Result<()> {
        self.update(scope, key, None)
    }

    fn update(&self, scope: &str, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        self.check_open()?;
        validate_scope(scope)?;
        validate_key(key)?;
        let config = || StageConfig {
            compression: self.opts.compression,
            pack_size: self.opts.pack_size,
            generation: self.seen_generation.load(Ordering::Relaxed) + 1,
            spill: self.spill.clone(),
        };
        self.pending.set(scope, key, value, config);
        Ok(())
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
        let path = self.dir.join(manifest::MANIFEST_NAME);
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

    pub(crate) fn overlays(&self, scopes: &[String]) -> Vec<Overlay> {
        let inflight = self.inflight.lock().unwrap();
        scopes.iter().map(|s| Overlay::build(s, &inflight, self.pending.scope_snapshot(s))).collect()
    }

    pub(crate) fn note_damage(&self, meta: &PackMeta, e: &Error, final_attempt: bool) {
        self.note_damage_of(meta.id, e, final_attempt);
    }

    fn note_damage_of(&self, id: [u8; 32], e: &Error, final_attempt: bool) {
        if matches!(e, Error::Corrupted { .. }) || (final_attempt && e.is_not_found()) {
            self.corrupt_packs.lock().unwrap().insert(id);
        }
    }

    /// Marks this version as used, for other instances' expiry (once per instance).
    pub(crate) fn touch_once(&self) {
        if !self.opts.readonly && !self.touched.swap(true, Ordering::AcqRel) && super::check_not_link(&*self.fs, &self.dir).is_ok() {
            let _ = self.fs.touch(&self.dir.join(manifest::MANIFEST_NAME));
        }
    }

    /// One value; opens (at most, barring Bloom false positives) one pack.
    pub fn get(&self, scope: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        validate_scope(scope)?;
        if let Some(unsaved) = self.get_unsaved(scope, key)? {
            return Ok(unsaved);
        }
        self.with_current_manifest(|manifest, final_attempt| self.get_committed(manifest, scope, key, final_attempt))
            .map_err(missing_as_corrupt)
    }

    /// Runs `read` on the committed manifest, again on each newer one while
    /// it fails because a pack is missing and the manifest keeps changing
    /// (see `MAX_START_OVERS`). `read` learns when its try is the last.
    pub(crate) fn with_current_manifest<T>(&self, mut read: impl FnMut(&Arc<Manifest>, bool) -> Result<T>) -> Result<T> {
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

    /// `get` answered from state this instance already holds, or `None` when
    /// that is not enough and `get` (which may read files) must run instead.
    /// Answers only for keys without unsaved updates, from the cached
    /// manifest while its file is unchanged and from packs `get` has already
    /// opened and verified, decoding at most one block of at most
    /// `BLOCK_SIZE`: cheap enough to run on the caller's thread. Errors, too,
    /// are left to `get`.
    pub fn get_cached(&self, scope: &str, key: &[u8]) -> Option<Option<Vec<u8>>> {
        if self.check_open().is_err() || validate_scope(scope).is_err() {
            return None;
        }
        if Overlay::lookup(scope, key, &self.inflight.lock().unwrap(), &self.pending).is_some() {
            return None;
        }
        let manifest = self.unchanged_manifest()?;
        let opened = |pack: &PackMeta| self.views.lock().unwrap().get(&pack.id).cloned().ok_or(());
        match find_live(&manifest, scope, key, opened).ok()? {
            Some((view, i)) if view.value_len(i) <= BLOCK_SIZE as u64 => view.read_value(i).ok().map(Some),
            Some(_) => None,
            None => Some(None),
        }
    }

    /// The cached manifest, if the file on disk is still the one it came from.
    fn unchanged_manifest(&self) -> Option<Arc<Manifest>> {
        let stamp = self.fs.stamp(&self.dir.join(manifest::MANIFEST_NAME)).ok()??;
        let cache = self.manifest_cache.lock().unwrap();
        cache.as_ref().filter(|c| c.stamp == Some(stamp)).map(|c| c.decoded.clone())
    }

    /// The unsaved state of `key`: `Some(None)` when removed, `None` when
    /// untouched since the last commit.
    fn get_unsaved(&self, scope: &str, key: &[u8]) -> Result<Option<Option<Vec<u8>>>> {
        for _ in 0..STALE_RETRIES {
            let found = Overlay::lookup(scope, key, &self.inflight.lock().unwrap(), &self.pending);
            match found {
                Some(Some(value)) => match value.to_vec()? {
                    Some(bytes) => return Ok(Some(Some(bytes))),
                    None => continue, // set again meanwhile: look again
                },
                other => return Ok(other.map(|_| None)),
            }
        }
        Err(Error::Internal(format!("{scope}: a key kept changing while being read")))
    }

    fn get_committed(
        &self,
        manifest: &Manifest,
        scope: &str,
        key: &[u8],
        final_attempt: bool,
    ) -> Result<Option<Vec<u8>>> {
        let mut found = None;
        let open = |pack: &PackMeta| {
            found = Some(pack.id);
            self.cached_view(pack).inspect_err(|e| self.note_damage(pack, e, final_attempt))
        };
        match find_live(manifest, scope, key, open)? {
            Some((view, i)) => view.read_value(i).map(Some).inspect_err(|e| {
                // A block is checked when first read: damage shows here too.
                if let Some(id) = found {
                    self.note_damage_of(id, e, final_attempt);
                }
            }),
            None => Ok(None),
        }
    }

    fn cached_view(&self, meta: &PackMeta) -> Result<Arc<PackView>> {
        if let Some(v) = self.views.lock().unwrap().get(&meta.id) {
            return Ok(v.clone());
        }
        let view = Arc::new(self.open_pack(meta, Verify::OnRead)?);
        let mut views = self.views.lock().unwrap();
        if views.len() >= 256 {
            views.clear(); // bounded: mappings are cheap to re-open, not to hold forever
        }
        views.insert(meta.id, view.clone());
        Ok(view)
    }

    /// Committed scopes plus scopes with unsaved sets, minus those being reset.
    pub fn scopes(&self) -> Result<Vec<String>> {
        self.check_open()?;
        let manifest = self.read_manifest()?;
        let inflight = self.inflight.lock().unwrap().clone();
        let mut names: HashSet<String> = manifest
            .scopes
            .iter()
            .filter(|s| !inflight.iter().any(|b| b.clears(&s.name)))
            .filter(|s| s.packs.iter().any(|p| p.live_items() > 0))
            .map(|s| s.name.clone())
            .collect();
        for batch in &inflight {
            names.extend(batch.updates.iter().filter(|(_, u)| u.values().any(|v| v.is_some())).map(|(s, _)| s.clone()));
        }
        names.extend(self.pending.scopes_with_sets());
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        Ok(names)
    }

    fn enqueue(&self, build: impl FnOnce(&mut Batch)) -> Result<Arc<Batch>> {
        self.check_open()?;
        if self.opts.readonly {
            return Err(Error::ReadOnly("save"));
        }
        let mut inflight = self.inflight.lock().unwrap();
        let mut batch = Batch { seq: self.next_seq.fetch_add(1, Ordering::AcqRel), ..Batch::default() };
        build(&mut batch);
        let batch = Arc::new(batch);
        inflight.push(batch.clone());
        Ok(batch)
    }

    /// Takes the pending updates now (a later `set` goes to the next save) and
    /// queues them; `finish` commits them.
    pub fn begin_save(&self) -> Result<Arc<Batch>> {
        self.enqueue(|b| b.updates = self.pending.take_all())
    }

    /// Drops one scope (with its unsaved updates) or, with `None`, everything
    /// of this version; `finish` commits the drop.
    pub fn begin_reset(&self, scope: Option<&str>) -> Result<Arc<Batch>> {
        if let Some(s) = scope {
            validate_scope(s)?;
        }
        if self.opts.readonly {
            return Err(Error::ReadOnly("reset"));
        }
        self.enqueue(|b| match scope {
            Some(s) => {
                self.pending.drop_scope(s);
                b.clear.insert(s.to_owned());
            }
            None => {
                self.pending.clear();
                b.clear_all = true;
            }
        })
    }

    /// Commits a queued batch after every earlier one. On failure the batch's
    /// updates go back to the pending maps, so a later save retries them.
    pub fn finish(&self, batch: Arc<Batch>) -> Result<SaveStats> {
        let mut turn = self.turn.lock().unwrap();
        while *turn != batch.seq {
            turn = self.turn_cv.wait(turn).unwrap();
        }
        drop(turn);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| super::save::commit(self, &batch)))
            .unwrap_or_else(|p| Err(Error::Internal(panic_message(&p))));
        {
            let mut inflight = self.inflight.lock().unwrap();
            if result.is_err() {
                self.pending.restore(&batch.updates);
            }
            inflight.retain(|b| b.seq != batch.seq);
        }
        *self.turn.lock().unwrap() += 1;
        self.turn_cv.notify_all();
        result
    }

    pub fn save(&self) -> Result<SaveStats> {
        let batch = self.begin_save()?;
        self.finish(batch)
    }

    pub fn reset(&self, scope: Option<&str>) -> Result<()> {
        let batch = self.begin_reset(scope)?;
        self.finish(batch).map(|_| ())
    }

    /// Refuses new work, waits for queued saves, then drops memory and files.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let last = self.next_seq.load(Ordering::Acquire);
        let mut turn = self.turn.lock().unwrap();
        while *turn < last {
            turn = self.turn_cv.wait(turn).unwrap();
        }
        drop(turn);
        self.pending.clear();
        self.users.lock().unwrap().take();
        self.views.lock().unwrap().clear();
        *self.manifest_cache.lock().unwrap() = None;
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
    pub(crate) fn spill(&self) -> Option<&Spill> {
        self.spill.as_deref()
    }

    pub(crate) fn forget_views(&self) {
        self.views.lock().unwrap().clear();
    }
}

/// The version's file that every open store holds a shared lock on.
pub const USERS_NAME: &str = "USERS";

/// A shared lock on `dir/USERS`, creating both unless `readonly` (best
/// effort: without it, this store's version is only as safe from expiry as
/// its manifest's mtime says). An expiry that deleted the file while this
/// waited for the lock is met by making them again.
fn hold_version(fs: &dyn Fs, dir: &Path, readonly: bool) -> Option<Box<dyn LockGuard>> {
    for _ in 0..8 {
        if !readonly {
            fs.create_dir_all(dir).ok()?;
        }
        super::check_not_link(fs, dir).ok()?;
        match fs.lock_shared(&dir.join(USERS_NAME), !readonly) {
            Ok(Some(guard)) => return Some(guard),
            Ok(None) if !readonly => continue,
            _ => return None,
        }
    }
    None
}

/// The live copy of `key` in `scope`: its pack's view and item. `open` gives
/// the view of each pack whose Bloom filter may hold the key, newest first;
/// its error ends the search.
fn find_live<E>(
    manifest: &Manifest,
    scope: &str,
    key: &[u8],
    mut open: impl FnMut(&PackMeta) -> std::result::Result<Arc<PackView>, E>,
) -> std::result::Result<Option<(Arc<PackView>, usize)>, E> {
    let Some(meta) = manifest.scope(scope) else { return Ok(None) };
    let hash = bloom::key_hash(key);
    for pack in meta.packs.iter().rev().filter(|p| bloom::may_contain(&p.bloom, hash)) {
        let view = open(pack)?;
        // A scope holds at most one live copy of a key; dead copies may sit
        // in any pack, newer or older than the live one.
        if let Some(i) = view.find(key).filter(|&i| !pack.is_dead(i as u32)) {
            return Ok(Some((view, i)));
        }
    }
    Ok(None)
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

pub(crate) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a worker panicked".into())
}
