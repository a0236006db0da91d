//! The public face of the engine: one [`Store`] per open cache directory and
//! version. Loads read the committed manifest plus this instance's unsaved
//! updates; saves are queued in call order and committed under a file lock.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::engine::core::{validate_key, validate_scope, Core};
pub use crate::engine::core::{
    Options, DEFAULT_COMPRESSION, DEFAULT_EXPIRE, DEFAULT_LEVEL, DEFAULT_PACK_SIZE, MAX_KEY_LEN,
};
use crate::engine::error::{Error, Result};
use crate::engine::fs::{Fs, LockGuard};
use crate::engine::keyhash::KeyBytes;
use crate::engine::layout::{self, USERS_NAME};
use crate::engine::log;
use crate::engine::pack::writer::Compression;
use crate::engine::pairs::{LoadEvent, LoadedScope};
use crate::engine::read::load::{LoadPlan, LoadStats};
use crate::engine::unsaved::stage::StageConfig;
use crate::engine::unsaved::updates::{Batch, Overlay, Pending};
use crate::engine::unsaved::{self, STALE_RETRIES};
use crate::engine::write::save;
pub use crate::engine::write::save::SaveStats;

pub struct Store {
    core: Core,
    pending: Pending,
    /// Batches handed to `save`/`reset` and not yet finished, in call order.
    inflight: Mutex<Vec<Arc<Batch>>>,
    next_seq: AtomicU64,
    /// Sequence number of the batch whose turn it is to commit.
    turn: Mutex<u64>,
    turn_cv: Condvar,
    /// A shared lock on the version's `USERS` file while this store is
    /// open: expiry deletes a version only when it can lock that file
    /// exclusively, so no version in use anywhere is deleted.
    users: Mutex<Option<Box<dyn LockGuard>>>,
    /// The last load that finished.
    last_load: Mutex<Option<LoadStats>>,
}

impl Store {
    pub fn open(opts: Options, fs: Arc<dyn Fs>) -> Result<Store> {
        let core = Core::open(opts, fs)?;
        log::line(|| {
            format!("open {} ({:?}, {})", core.dir.display(), core.opts.version, codec_name(core.opts.compression))
        });
        let users = Mutex::new(hold_version(&*core.fs, &core.dir, core.opts.readonly));
        Ok(Store {
            core,
            pending: Pending::default(),
            inflight: Mutex::new(Vec::new()),
            next_seq: AtomicU64::new(0),
            turn: Mutex::new(0),
            turn_cv: Condvar::new(),
            users,
            last_load: Mutex::new(None),
        })
    }

    /// The state reads and writes share.
    pub fn core(&self) -> &Core {
        &self.core
    }

    pub fn dir(&self) -> &Path {
        self.core.dir()
    }

    pub fn options(&self) -> &Options {
        self.core.options()
    }

    /// Records `value` for `key` (copied into the scope's staging chunk).
    pub fn set(&self, scope: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.update(scope, key, Some(&[value]))
    }

    /// Sets `key` to the concatenation of `parts`, copied once, into staging.
    pub fn set_parts(&self, scope: &str, key: &[u8], parts: &[&[u8]]) -> Result<()> {
        self.update(scope, key, Some(parts))
    }

    pub fn remove(&self, scope: &str, key: &[u8]) -> Result<()> {
        self.update(scope, key, None)
    }

    fn update(&self, scope: &str, key: &[u8], value: Option<&[&[u8]]>) -> Result<()> {
        self.core.check_open()?;
        validate_scope(scope)?;
        validate_key(key)?;
        let config = || StageConfig {
            compression: self.core.opts.compression,
            pack_size: self.core.opts.pack_size,
            generation: self.core.next_generation(),
            spill: self.core.spill().cloned(),
        };
        self.pending.set(scope, key, value, config);
        Ok(())
    }

    pub(crate) fn overlays(&self, scopes: &[String]) -> Vec<Overlay> {
        let inflight = self.inflight.lock().unwrap();
        scopes.iter().map(|s| Overlay::build(s, &inflight, self.pending.scope_snapshot(s))).collect()
    }

    /// One value; opens (at most, barring Bloom false positives) one pack.
    pub fn get(&self, scope: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.core.check_open()?;
        validate_scope(scope)?;
        if let Some(unsaved) = self.get_unsaved(scope, key)? {
            return Ok(unsaved);
        }
        self.core.get_committed_current(scope, key)
    }

    /// The values of `keys` in `scope` (`None` where absent), by position:
    /// unsaved updates first, then one pass over the committed packs whose
    /// key filters may hold the rest, each block read once.
    pub fn get_many(&self, scope: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.core.check_open()?;
        validate_scope(scope)?;
        let mut out = Vec::with_capacity(keys.len());
        let mut committed = Vec::new();
        for (n, key) in keys.iter().enumerate() {
            match self.get_unsaved(scope, key)? {
                Some(unsaved) => out.push(unsaved),
                None => {
                    out.push(None);
                    committed.push(n);
                }
            }
        }
        let wanted: Vec<&[u8]> = committed.iter().map(|&n| &keys[n][..]).collect();
        if !wanted.is_empty() {
            for (n, value) in committed.into_iter().zip(self.core.get_many_committed(scope, &wanted)?) {
                out[n] = value;
            }
        }
        Ok(out)
    }

    /// The live keys of `scope`, unsaved updates applied, sorted bytewise.
    /// Reads pack indexes only: no value is decoded.
    pub fn keys(&self, scope: &str) -> Result<Vec<Vec<u8>>> {
        self.core.check_open()?;
        validate_scope(scope)?;
        let overlay = self.overlays(&[scope.to_owned()]).pop().unwrap_or_default();
        let mut keys = if overlay.cleared { Vec::new() } else { self.core.keys_committed(scope)? };
        keys.retain(|k| !overlay.entries.contains_key(KeyBytes::new(k)));
        keys.extend(overlay.entries.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.to_vec()));
        keys.sort_unstable();
        Ok(keys)
    }

    /// `get` answered from state this instance already holds, or `None` when
    /// that is not enough and `get` (which may read files) must run instead.
    /// Answers only for keys without unsaved updates, from the cached
    /// manifest while its file is unchanged and from packs `get` has already
    /// opened and verified, decoding at most one block of at most
    /// `BLOCK_SIZE`: cheap enough to run on the caller's thread. Errors, too,
    /// are left to `get`.
    pub fn get_cached(&self, scope: &str, key: &[u8]) -> Option<Option<Vec<u8>>> {
        if self.core.check_open().is_err() || validate_scope(scope).is_err() {
            return None;
        }
        if Overlay::lookup(scope, key, &self.inflight.lock().unwrap(), &self.pending).is_some() {
            return None;
        }
        self.core.get_cached_committed(scope, key)
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

    /// Committed scopes plus scopes with unsaved sets, minus those being reset.
    pub fn scopes(&self) -> Result<Vec<String>> {
        self.core.check_open()?;
        let manifest = self.core.read_manifest()?;
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
        self.core.check_open()?;
        if self.core.opts.readonly {
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
        if self.core.opts.readonly {
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
        let started = Instant::now();
        let mut turn = self.turn.lock().unwrap();
        while *turn != batch.seq {
            turn = self.turn_cv.wait(turn).unwrap();
        }
        drop(turn);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| save::save_batch(&self.core, &batch)))
            .unwrap_or_else(|p| Err(Error::Internal(crate::engine::error::panic_message(&p))));
        {
            let mut inflight = self.inflight.lock().unwrap();
            if result.is_err() {
                self.pending.restore(&batch.updates);
            }
            inflight.retain(|b| b.seq != batch.seq);
        }
        *self.turn.lock().unwrap() += 1;
        self.turn_cv.notify_all();
        log::line(|| match &result {
            Ok(s) => format!(
                "save: generation {}, {} packs written ({}, {} items), {} packs removed, {} versions expired, {:.1} ms",
                s.generation,
                s.packs_written,
                log::mib(s.bytes_written),
                s.items_written,
                s.packs_removed,
                s.versions_expired,
                started.elapsed().as_secs_f64() * 1e3
            ),
            Err(e) => format!("save failed: {e}"),
        });
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
        self.core.mark_closed();
        let last = self.next_seq.load(Ordering::Acquire);
        let mut turn = self.turn.lock().unwrap();
        while *turn < last {
            turn = self.turn_cv.wait(turn).unwrap();
        }
        drop(turn);
        self.pending.clear();
        self.users.lock().unwrap().take();
        self.core.release_caches();
    }

    /// Maps every pack `scopes` need (with this store's unsaved updates
    /// applied on top); `decode` then turns them into pairs.
    pub fn prepare_load(&self, scopes: &[String]) -> Result<LoadPlan> {
        self.core.check_open()?;
        for s in scopes {
            validate_scope(s)?;
        }
        let unsaved = unsaved::for_load(|| self.overlays(scopes))?;
        self.core.prepare_load(scopes, unsaved)
    }

    /// Verifies and decodes a prepared load on all cores, calling `sink`
    /// (from worker threads) with each part as soon as it is ready; then
    /// records the load's [`LoadStats`] (`last_load`).
    pub fn decode(&self, plan: LoadPlan, sink: impl Fn(LoadEvent) + Sync) {
        let started = Instant::now();
        let (packs, read_bytes) = plan.reads();
        let scopes = plan.scope_count();
        let (items, raw_bytes) = (AtomicU64::new(0), AtomicU64::new(0));
        self.core.decode(plan, |event| {
            if let LoadEvent::Part { part, .. } = &event {
                items.fetch_add(part.pairs.len() as u64, Ordering::Relaxed);
                let bytes: usize = part.pairs.iter().map(|[ks, ke, vs, ve]| ke - ks + ve - vs).sum();
                raw_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            }
            sink(event)
        });
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stats = LoadStats {
            scopes,
            items: items.into_inner(),
            raw_bytes: raw_bytes.into_inner(),
            packs,
            read_bytes,
            ms: started.elapsed().as_secs_f64() * 1e3,
            threads: cores.min(packs.max(1)),
        };
        log::line(|| {
            let (raw, read) = (log::mib(stats.raw_bytes), log::mib(stats.read_bytes));
            format!(
                "load {} scopes: {} items, {raw} raw, {} packs, {read} read, {:.1} ms",
                stats.scopes, stats.items, stats.packs, stats.ms
            )
        });
        *self.last_load.lock().unwrap() = Some(stats);
    }

    /// What the last finished load read and handed out.
    pub fn last_load(&self) -> Option<LoadStats> {
        self.last_load.lock().unwrap().clone()
    }

    pub fn load(&self, scope: &str) -> Result<LoadedScope> {
        self.load_many(&[scope.to_owned()])?.pop().expect("one result per scope")
    }

    /// Loads every scope (decoding all their packs in parallel). The outer
    /// `Err` is for the whole call; each scope has its own result.
    pub fn load_many(&self, scopes: &[String]) -> Result<Vec<Result<LoadedScope>>> {
        let plan = self.prepare_load(scopes)?;
        Ok(crate::engine::read::load::collect(&self.core, plan))
    }
}

/// A shared lock on `dir/USERS`, creating both unless `readonly` (best
/// effort: without it, this store's version is only as safe from expiry as
/// its manifest's mtime says). An expiry that deleted the file while this
/// waited for the lock is met by making them again.
fn hold_version(fs: &dyn Fs, dir: &Path, readonly: bool) -> Option<Box<dyn LockGuard>> {
    for _ in 0..8 {
        if !readonly {
            fs.create_dir_all(dir).ok()?;
        }
        layout::check_not_link(fs, dir).ok()?;
        match fs.lock_shared(&dir.join(USERS_NAME), !readonly) {
            Ok(Some(guard)) => return Some(guard),
            Ok(None) if !readonly => continue,
            _ => return None,
        }
    }
    None
}

fn codec_name(compression: Compression) -> String {
    match compression {
        Compression::None => "none".into(),
        Compression::Lz4 => "lz4".into(),
        Compression::Zstd(level) => format!("zstd {level}"),
    }
}
