//! Commit of one batch: under the version's file lock, merge the batch into
//! the latest committed manifest (another process may have committed since we
//! last looked), write only the changed items into new packs, compact packs
//! whose live share fell low, then atomically replace the manifest.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::engine::core::Core;
use crate::engine::error::{Error, Result};
use crate::engine::gc;
use crate::engine::keyhash::KeyBytes;
use crate::engine::manifest::{self, Manifest, PackMeta, ScopeMeta};
use crate::engine::pack::bloom;
use crate::engine::pack::reader::Verify;
use crate::engine::pack::writer::{encode_pack_with, item_size, EncodedPack};
use crate::engine::par;
use crate::engine::unsaved::stage::{self, Staged};
use crate::engine::unsaved::updates::{Batch, ScopeUpdates};
use crate::engine::write::compact::{self, Source};
use crate::engine::write::policy;

/// Up to this many updated keys, a scope's packs are scanned by comparing keys.
const FEW_KEYS: usize = 8;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveStats {
    pub generation: u64,
    pub packs_written: u32,
    pub bytes_written: u64,
    pub items_written: u64,
    pub packs_removed: u32,
    pub versions_expired: u32,
}

pub fn save_batch(store: &Core, batch: &Batch) -> Result<SaveStats> {
    let fs = &*store.fs;
    let dir = store.dir();
    let mut stats = SaveStats::default();
    let corrupt: HashSet<[u8; 32]> = store.corrupt_packs.lock().unwrap().clone();
    let must_commit = !batch.is_empty() || !corrupt.is_empty();
    crate::engine::layout::check_not_link(fs, dir)?;
    if must_commit {
        fs.create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    } else if !fs.is_dir(dir).map_err(|e| Error::io("stat", dir, e))? {
        stats.versions_expired = gc::expire_versions(fs, &store.opts, dir);
        return Ok(stats);
    }
    let lock_path = dir.join(crate::engine::layout::LOCK_NAME);
    let _lock = fs.lock(&lock_path).map_err(|e| Error::io("lock", &lock_path, e))?;
    let base = match manifest::read(fs, dir) {
        Ok(m) => m.unwrap_or_default(),
        Err(Error::Corrupted { .. }) if must_commit => Manifest::default(), // a cache: start over
        Err(Error::Corrupted { .. }) => {
            // Nothing to commit: leave the damaged manifest for the next real save.
            stats.versions_expired = gc::expire_versions(fs, &store.opts, dir);
            return Ok(stats);
        }
        Err(e) => return Err(e),
    };
    let live = if must_commit {
        let next = merge(store, batch, &base, &corrupt, &mut stats)?;
        manifest::commit(fs, dir, &next, store.opts.fsync)?;
        store.saw_generation(next.generation);
        store.corrupt_packs.lock().unwrap().retain(|id| !corrupt.contains(id));
        store.forget_views();
        next
    } else {
        base
    };
    stats.generation = live.generation;
    // Also on a save with nothing to commit: files an interrupted save left
    // behind never outlive the next successful save.
    stats.packs_removed = gc::remove_orphans(fs, dir, &live, store.spill().map(|s| &**s));
    stats.versions_expired = gc::expire_versions(fs, &store.opts, dir);
    Ok(stats)
}

/// Work for one scope: which packs survive (with updated dead lists), which
/// staged packs are written as they are, and which items go into new packs.
struct ScopePlan {
    name: String,
    kept: Vec<PackMeta>,
    staged: Vec<(Arc<Staged>, PackMeta)>,
    sources: Vec<Source>,
}

/// A pack a save may keep or compact: committed, or staged by this batch.
enum Candidate {
    Committed(PackMeta),
    Staged(Arc<Staged>, PackMeta),
}

impl Candidate {
    fn meta(&self) -> &PackMeta {
        match self {
            Candidate::Committed(m) | Candidate::Staged(_, m) => m,
        }
    }
}

enum WriteJob<'p> {
    Encode(usize, compact::NewPack<'p>),
    Write(usize, &'p Staged, &'p PackMeta),
}

fn merge(
    store: &Core,
    batch: &Batch,
    base: &Manifest,
    corrupt: &HashSet<[u8; 32]>,
    stats: &mut SaveStats,
) -> Result<Manifest> {
    let generation = base.generation + 1;
    let mut scopes: Vec<ScopeMeta> = base
        .scopes
        .iter()
        .filter(|s| !batch.clears(&s.name))
        .filter(|s| !s.packs.iter().any(|p| corrupt.contains(&p.id)))
        .cloned()
        .collect();
    let mut work = Vec::new();
    for (name, updates) in batch.updates.iter().filter(|(_, u)| !u.is_empty()) {
        let packs = match scopes.iter().position(|s| &s.name == name) {
            Some(i) => scopes.remove(i).packs,
            None => Vec::new(),
        };
        work.push((name, packs, updates));
    }
    // Scopes are planned in parallel: an incremental save touches every
    // scope a little, and each scope's scan is short.
    let plans = par::map(work, |(name, packs, updates)| plan_scope(store, name, packs, updates))
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let mut jobs = Vec::new();
    for (pi, plan) in plans.iter().enumerate() {
        jobs.extend(plan.staged.iter().map(|(staged, meta)| WriteJob::Write(pi, staged, meta)));
        jobs.extend(
            compact::new_packs(&plan.sources, store.opts.pack_size)?.into_iter().map(|c| WriteJob::Encode(pi, c)),
        );
    }
    // Each worker encodes (unless staged) and writes its pack and keeps only
    // its metadata, so compressed bodies do not pile up until the commit.
    let written = par::map(jobs, |job| match job {
        WriteJob::Encode(pi, chunk) => {
            let (name, compression) = (&plans[pi].name, store.opts.compression);
            let pack = encode_pack_with(name, generation, &chunk.copied, &chunk.loose, compression)?;
            write_pack(store, &pack)?;
            Ok::<_, Error>((pi, PackMeta::of(&pack)))
        }
        WriteJob::Write(pi, staged, meta) => write_staged(store, staged).map(|()| (pi, meta.clone())),
    });
    if store.opts.fsync {
        store.fs.sync_dir(store.dir()).map_err(|e| Error::io("fsync", store.dir(), e))?;
    }
    let mut new_packs: Vec<Vec<PackMeta>> = plans.iter().map(|_| Vec::new()).collect();
    for result in written {
        let (pi, meta) = result?;
        stats.packs_written += 1;
        stats.bytes_written += meta.file_len;
        stats.items_written += meta.items as u64;
        new_packs[pi].push(meta);
    }
    for (plan, fresh) in plans.into_iter().zip(new_packs) {
        let mut packs = plan.kept;
        packs.extend(fresh);
        if !packs.is_empty() {
            scopes.push(ScopeMeta { name: plan.name, packs });
        }
    }
    scopes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Manifest { generation, version: store.opts.version.clone(), scopes })
}

/// Writes `<id>.pack` through a temp file (a crash leaves only a temp file,
/// removed by the next save).
fn write_pack(store: &Core, pack: &EncodedPack) -> Result<()> {
    let name = crate::engine::pack::format::pack_file_name(&pack.id);
    crate::engine::layout::write_into_place(&*store.fs, store.dir(), &name, &pack.parts(), store.opts.fsync)
}

/// Puts a staged pack under its pack name: a hard link to its stage file
/// (the stage file stays until the chunk is dropped, so a failed save can
/// link it again), or a write when it is in memory or links fail.
fn write_staged(store: &Core, staged: &Staged) -> Result<()> {
    if let Some(pack) = staged.in_memory() {
        return write_pack(store, pack);
    }
    let (fs, name) = (&*store.fs, staged.meta.file_name());
    let stage_path = staged.file().ok_or_else(|| Error::Internal("a staged pack with no bytes".into()))?;
    if store.opts.fsync {
        fs.sync_file(stage_path).map_err(|e| Error::io("fsync", stage_path, e))?;
    }
    let path = store.dir().join(&name);
    match fs.hard_link(stage_path, &path) {
        Ok(()) => return Ok(()),
        // Under the lock, a file of this name is left from an earlier try
        // (packs are named by a hash that commits to their bytes); replaced,
        // in case a crash tore it.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if fs.remove_file(&path).is_ok() && fs.hard_link(stage_path, &path).is_ok() {
                return Ok(());
            }
        }
        Err(_) => {} // e.g. a file system without hard links
    }
    let bytes = fs.read_file(stage_path).map_err(|e| Error::io("read", stage_path, e))?;
    crate::engine::layout::write_into_place(fs, store.dir(), &name, &[&bytes], store.opts.fsync)
}

/// Marks the committed copies of updated keys dead, finishes the staged
/// packs, then picks packs to compact. Committed packs that cannot be read
/// are dropped (the scope starts afresh from this batch).
fn plan_scope(store: &Core, name: &str, mut packs: Vec<PackMeta>, updates: &ScopeUpdates) -> Result<ScopePlan> {
    match mark_dead(store, &mut packs, updates) {
        Ok(()) => {}
        Err(Error::Corrupted { .. }) => packs.clear(),
        Err(e) => return Err(e),
    }
    let staged = staged_packs(store, updates)?;
    let mut plan = ScopePlan { name: name.to_owned(), kept: Vec::new(), staged: Vec::new(), sources: Vec::new() };
    let candidates: Vec<Candidate> = packs
        .into_iter()
        .map(Candidate::Committed)
        .chain(staged.into_iter().map(|(s, m)| Candidate::Staged(s, m)))
        .filter(|c| c.meta().live_items() > 0) // fully dead: dropped, deleted by GC
        .collect();
    let picks = policy::to_compact(candidates.iter().map(Candidate::meta), store.opts.pack_size);
    let mut to_compact = Vec::new();
    for (candidate, compact) in candidates.into_iter().zip(picks) {
        if compact {
            to_compact.push(candidate);
            continue;
        }
        match candidate {
            Candidate::Committed(meta) => plan.kept.push(meta),
            Candidate::Staged(staged, meta) => plan.staged.push((staged, meta)),
        }
    }
    let opened = par::map(to_compact, |c| {
        let committed = matches!(c, Candidate::Committed(_));
        (committed, open_source(store, c))
    });
    let mut committed_damaged = false;
    for (committed, result) in opened {
        match result {
            Ok(source) => plan.sources.push(source),
            Err(Error::Corrupted { .. }) if committed => committed_damaged = true,
            Err(e) => return Err(e),
        }
    }
    if committed_damaged {
        // Drop every committed pack of the scope, keep this batch's items.
        plan.kept.clear();
        plan.sources.retain(|s| s.from_staged);
    }
    Ok(plan)
}
fn open_source(store: &Core, candidate: Candidate) -> Result<Source> {
    match candidate {
        Candidate::Committed(meta) => compact::open_committed(store, meta, store.opts.compression),
        Candidate::Staged(staged, meta) => compact::open_staged(&staged, meta, store.opts.compression),
    }
}

/// This batch's staged packs (encoding those the background has not), each
/// with the items set again or removed after it was encoded marked dead. A
/// stage file deleted under us (say, with the cache directory, during the
/// build) took its values with it: its keys are left out, like removed keys
/// (their committed copies are marked dead all the same), instead of
/// failing every save from now on.
fn staged_packs(store: &Core, updates: &ScopeUpdates) -> Result<Vec<(Arc<Staged>, PackMeta)>> {
    let groups = stage::group_by_chunk(updates.values().flatten().map(|v| (v, ())));
    let staged = par::map(groups, |group| {
        let staged = group.chunk.encoded()?;
        if let Some(path) = staged.file() {
            if store.fs.modified(path).map_err(|e| Error::io("stat", path, e))?.is_none() {
                return Ok(None);
            }
        }
        let mut live = vec![false; staged.sizes.len()];
        for item in group.items {
            live[staged.pack_item(item)? as usize] = true;
        }
        let mut meta = staged.meta.clone();
        for (i, _) in live.iter().enumerate().filter(|(_, l)| !**l) {
            meta.dead.push(i as u32);
            meta.dead_bytes += staged.sizes[i];
        }
        Ok(Some((staged, meta)))
    });
    staged.into_iter().filter_map(|r| r.transpose()).collect()
}

/// Scans the keys (index only) of the scope's packs and marks the live copy
/// of each updated key dead. With few updates (a watch build's save), a pack
/// whose key filter rules out every updated key is not opened at all.
fn mark_dead(store: &Core, packs: &mut [PackMeta], updates: &ScopeUpdates) -> Result<()> {
    let hashes: Option<Vec<(u64, u64)>> =
        (updates.len() <= 2 * packs.len()).then(|| updates.keys().map(|k| bloom::key_hash(k)).collect());
    let may_hold =
        |meta: &PackMeta| hashes.as_ref().is_none_or(|hs| hs.iter().any(|&h| bloom::may_contain(&meta.bloom, h)));
    let metas: Vec<(usize, &PackMeta)> = packs.iter().enumerate().filter(|(_, m)| may_hold(m)).collect();
    // A handful of keys are compared directly: cheaper than hashing every key of the pack.
    let few: Option<Vec<&[u8]>> = (updates.len() <= FEW_KEYS).then(|| updates.keys().map(|k| &**k).collect());
    let updated = |key: &[u8]| match &few {
        Some(keys) => keys.contains(&key),
        None => updates.contains_key(KeyBytes::new(key)),
    };
    let found = par::map(metas, |(pi, meta)| -> Result<Vec<(usize, u32, u64)>> {
        let view = store.open_pack(meta, Verify::IndexOnly)?;
        let mut hits = Vec::new();
        for i in 0..view.len() {
            let key = view.key(i);
            if updated(key) && !meta.is_dead(i as u32) {
                hits.push((pi, i as u32, item_size(key, &[]) + view.value_len(i)));
            }
        }
        Ok(hits)
    });
    let mut per_pack: HashMap<usize, Vec<(u32, u64)>> = HashMap::new();
    for hits in found {
        for (pi, item, size) in hits.map_err(|e| if e.is_not_found() { Error::corrupted(e.to_string()) } else { e })? {
            per_pack.entry(pi).or_default().push((item, size));
        }
    }
    for (pi, hits) in per_pack {
        let pack = &mut packs[pi];
        for (item, size) in hits {
            pack.dead.push(item);
            pack.dead_bytes += size;
        }
        pack.dead.sort_unstable();
        pack.dead.dedup();
    }
    Ok(())
}
