//! Stage files of one store: packs encoded before their save, on disk
//! instead of in memory, guarded by a lock the store holds while it has any.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::fs::{Fs, LockGuard};
use crate::engine::layout::{stage_file_name, stage_lock_name, unguessable_hex};
use crate::engine::pack::writer::EncodedPack;

/// Stage files: packs encoded before their save, kept on disk instead of in
/// memory. A store that spills claims an owner name and holds the lock file
/// `stage-<owner>.lock` while it has stage files (`stage-<owner>-<n>.pack`);
/// when its last one goes, it deletes the lock file and lets go, so a build
/// that saved leaves nothing behind. A save links a staged file to its pack
/// name (the stage file goes when its chunk is dropped), and garbage
/// collection deletes only stage files whose owner's lock is free, i.e.
/// whose store is gone.
pub struct Spill {
    pub(super) fs: Arc<dyn Fs>,
    dir: PathBuf,
    owner: Mutex<OwnerState>,
}

/// How long after a failed claim the next chunk tries again (a claim costs
/// a directory creation and a lock attempt).
const CLAIM_RETRY: Duration = if cfg!(test) { Duration::from_millis(50) } else { Duration::from_secs(2) };

enum OwnerState {
    None,
    Claimed(Owner),
    /// Claiming failed at this time (a read-only disk, no file handles
    /// left): chunks stay in memory until a claim made `CLAIM_RETRY` later
    /// succeeds.
    Failed(Instant),
}

struct Owner {
    name: String,
    /// Dropping it releases the lock.
    _lock: Box<dyn LockGuard>,
    next: u64,
    /// Stage files in use: any other file of this owner is a leftover (a
    /// failed removal) that GC may delete.
    live: HashSet<String>,
}

impl Spill {
    pub fn new(fs: Arc<dyn Fs>, dir: &Path) -> Spill {
        Spill { fs, dir: dir.to_owned(), owner: Mutex::new(OwnerState::None) }
    }

    /// The owner name of this store's stage files now, and a test of which
    /// of its files are still in use (for GC, which must keep those).
    pub fn current(&self) -> Option<(String, HashSet<String>)> {
        match &*self.owner.lock().unwrap() {
            OwnerState::Claimed(o) => Some((o.name.clone(), o.live.clone())),
            _ => None,
        }
    }

    fn claim(&self) -> Option<Owner> {
        self.fs.create_dir_all(&self.dir).ok()?;
        crate::engine::layout::check_not_link(&*self.fs, &self.dir).ok()?;
        let name = unguessable_hex();
        let lock = self.fs.try_lock(&self.dir.join(stage_lock_name(&name))).ok()??;
        Some(Owner { name, _lock: lock, next: 0, live: HashSet::new() })
    }

    /// Writes `pack` to a new stage file; `None` when it cannot be written.
    pub(super) fn write(&self, pack: &EncodedPack) -> Option<PathBuf> {
        let path = {
            let mut state = self.owner.lock().unwrap();
            // A lock file deleted under us (say, with the whole cache
            // directory) no longer guards our files: start a new owner.
            if let OwnerState::Claimed(owner) = &*state {
                let lock = self.dir.join(stage_lock_name(&owner.name));
                if !matches!(self.fs.modified(&lock), Ok(Some(_))) {
                    *state = OwnerState::None;
                }
            }
            if let OwnerState::Failed(at) = *state {
                if at.elapsed() >= CLAIM_RETRY {
                    *state = OwnerState::None;
                }
            }
            if matches!(*state, OwnerState::None) {
                *state = self.claim().map_or_else(|| OwnerState::Failed(Instant::now()), OwnerState::Claimed);
            }
            let OwnerState::Claimed(owner) = &mut *state else { return None };
            let name = stage_file_name(&owner.name, owner.next);
            owner.next += 1;
            owner.live.insert(name.clone());
            self.dir.join(name)
        };
        // Outside the lock: encoders write in parallel. The name is live, so
        // neither GC nor a release can take it meanwhile.
        // Never fsynced here (this may be the JS thread): with `fsync` the
        // save syncs the file before linking it.
        if self.fs.write_file(&path, &pack.parts(), false).is_err() {
            self.discard(&path);
            return None;
        }
        Some(path)
    }

    /// Deletes a stage file no longer needed; with the owner's last one
    /// gone, deletes its lock file and releases the lock.
    pub(super) fn discard(&self, path: &Path) {
        let _ = self.fs.remove_file(path);
        let mut state = self.owner.lock().unwrap();
        let OwnerState::Claimed(owner) = &mut *state else { return };
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            owner.live.remove(name);
        }
        if owner.live.is_empty() {
            let _ = self.fs.remove_file(&self.dir.join(stage_lock_name(&owner.name)));
            *state = OwnerState::None;
        }
    }
}
