//! Garbage: packs no manifest references, temp files of interrupted saves,
//! stage files of stores that are gone, and whole version directories unused
//! for longer than `expire`. Only names packcache itself creates are ever
//! deleted.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::SystemTime;

use crate::engine::core::Options;
use crate::engine::fs::Fs;
use crate::engine::layout::{
    is_temp_name, is_version_dir_name, stage_file_owner, stage_lock_name, LOCK_NAME, MANIFEST_NAME, USERS_NAME,
};
use crate::engine::manifest::Manifest;
use crate::engine::pack::format::is_pack_file_name;
use crate::engine::unsaved::stage::Spill;

/// Deletes unreferenced packs and temp files in `dir`. Must run under the
/// version's lock, after the commit: every save writes only under that lock,
/// so no other writer can own a temp file here. Stage files are removed when
/// their owner's lock is free, or when they are `own` files no longer in use.
/// Returns the packs removed. Failures are ignored: the next save tries again.
pub fn remove_orphans(fs: &dyn Fs, dir: &Path, manifest: &Manifest, own: Option<&Spill>) -> u32 {
    let live: HashSet<String> = manifest.scopes.iter().flat_map(|s| &s.packs).map(|p| p.file_name()).collect();
    let Ok(entries) = fs.read_dir(dir) else { return 0 };
    remove_dead_stage_files(fs, dir, &entries, own);
    let mut removed = 0;
    // Only regular files: a symlink is foreign, whatever its name.
    for entry in entries.iter().filter(|e| e.is_file) {
        let orphan_pack = is_pack_file_name(&entry.name) && !live.contains(&entry.name);
        if orphan_pack || is_temp_name(&entry.name) {
            if fs.remove_file(&dir.join(&entry.name)).is_ok() && orphan_pack {
                removed += 1;
            }
        }
    }
    removed
}

/// Stage files (and lock files) of owners whose lock nobody holds: their
/// store is gone, so nothing will ever link them. Of this store's own, the
/// ones it no longer uses.
fn remove_dead_stage_files(fs: &dyn Fs, dir: &Path, entries: &[crate::engine::fs::DirEntry], own: Option<&Spill>) {
    let own = own.and_then(|s| s.current());
    let mut owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for entry in entries.iter().filter(|e| e.is_file) {
        let Some((owner, is_lock)) = stage_file_owner(&entry.name) else { continue };
        match &own {
            Some((name, live)) if name == owner => {
                if !is_lock && !live.contains(&entry.name) {
                    let _ = fs.remove_file(&dir.join(&entry.name));
                }
            }
            _ => owners.entry(owner).or_default().extend((!is_lock).then_some(entry.name.as_str())),
        }
    }
    for (owner, names) in owners {
        let lock = dir.join(stage_lock_name(owner));
        let Ok(Some(guard)) = fs.try_lock(&lock) else { continue };
        for name in names {
            let _ = fs.remove_file(&dir.join(name));
        }
        let _ = fs.remove_file(&lock); // last: it also marks the files as taken
        drop(guard);
    }
}

/// `true` when a live store holds stage files in `dir`.
fn has_live_stage_files(fs: &dyn Fs, dir: &Path) -> bool {
    let Ok(entries) = fs.read_dir(dir) else { return false };
    entries
        .iter()
        .filter_map(|e| stage_file_owner(&e.name))
        .filter(|(_, is_lock)| *is_lock)
        .any(|(owner, _)| !matches!(fs.try_lock(&dir.join(stage_lock_name(owner))), Ok(Some(_))))
}

/// Deletes sibling version directories whose manifest (or, without one, the
/// directory itself) was last modified longer than `expire` ago, that no
/// open store uses (`USERS`) and that no save holds (`LOCK`). Returns how
/// many were deleted.
pub fn expire_versions(fs: &dyn Fs, opts: &Options, own_dir: &Path) -> u32 {
    let Some(expire) = opts.expire else { return 0 };
    let Ok(entries) = fs.read_dir(&opts.root) else { return 0 };
    let now = SystemTime::now();
    let mut expired = 0;
    for entry in entries.iter().filter(|e| e.is_dir && is_version_dir_name(&e.name)) {
        let dir = opts.root.join(&entry.name);
        if dir == own_dir {
            continue;
        }
        let manifest = dir.join(MANIFEST_NAME);
        let (used, stamped) = match fs.modified(&manifest) {
            Ok(Some(t)) => (t, &manifest),
            _ => match fs.modified(&dir) {
                Ok(Some(t)) => (t, &dir),
                _ => continue,
            },
        };
        if used > now {
            // A clock that was ahead (or a cache copied from one) must not
            // make a version immortal: its age starts over now.
            let _ = fs.touch(stamped);
            continue;
        }
        if now.duration_since(used).is_ok_and(|age| age <= expire) {
            continue;
        }
        let Ok(Some(lock)) = fs.try_lock(&dir.join(LOCK_NAME)) else { continue };
        // Every open store holds a shared lock on USERS: in use somewhere.
        let Ok(Some(_unused)) = fs.try_lock(&dir.join(USERS_NAME)) else { continue };
        if has_live_stage_files(fs, &dir) {
            continue; // a store is staging unsaved data here
        }
        // The manifest goes first: a deletion cut short leaves an empty
        // version, not a manifest naming packs that are gone.
        let manifest = dir.join(MANIFEST_NAME);
        if fs.remove_file(&manifest).is_err() && fs.modified(&manifest).ok().flatten().is_some() {
            continue;
        }
        if fs.remove_dir_all(&dir).is_ok() {
            expired += 1;
        }
        drop(lock);
    }
    expired
}
