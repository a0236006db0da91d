//! Unsaved sets and removes. `set`/`remove` only touch the per-scope pending
//! maps (values go to the scope's staging chunk, see `stage`); `save()` moves
//! them, in one step, into an in-flight [`Batch`] that loads still see (read
//! your writes) until it is committed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use dashmap::DashMap;

use crate::engine::keyhash::{HashedKey, KeyArena, KeyBytes, KeyTable};
use crate::engine::unsaved::stage::{StageConfig, Stager, Value};

/// The latest update of each key; `None` is a remove.
pub type ScopeUpdates = HashMap<HashedKey, Option<Value>, KeyTable>;
/// A set of keys, hashed like [`ScopeUpdates`].
pub type KeySet = HashSet<HashedKey, KeyTable>;

/// One unit of commit: a save's updates, or a reset.
#[derive(Default, Debug)]
pub struct Batch {
    pub seq: u64,
    pub clear_all: bool,
    pub clear: HashSet<String>,
    pub updates: HashMap<String, ScopeUpdates>,
}

impl Batch {
    pub fn clears(&self, scope: &str) -> bool {
        self.clear_all || self.clear.contains(scope)
    }

    pub fn is_empty(&self) -> bool {
        !self.clear_all && self.clear.is_empty() && self.updates.values().all(|u| u.is_empty())
    }
}

#[derive(Default)]
struct ScopeState {
    entries: ScopeUpdates,
    keys: KeyArena,
    stager: Stager,
}

#[derive(Default)]
pub struct Pending {
    scopes: DashMap<String, ScopeState>,
}

impl Pending {
    /// Records a set (`Some`, the value as parts stored back to back) or
    /// remove (`None`) of `key`; `config` is asked only when a staging chunk
    /// is started.
    pub fn set(&self, scope: &str, key: &[u8], value: Option<&[&[u8]]>, config: impl Fn() -> StageConfig) {
        let mut guard = match self.scopes.get_mut(scope) {
            Some(state) => state,
            None => self.scopes.entry(scope.to_owned()).or_default(),
        };
        let state = &mut *guard;
        let (staged, sealed) = match value {
            Some(v) => {
                let (staged, sealed) = state.stager.push(scope, key, v, config);
                (Some(staged), sealed)
            }
            None => (None, None),
        };
        // Looked up first: a key set again keeps its copy (no arena bytes
        // wasted on keys a watch build sets over and over between saves).
        let old = match state.entries.get_mut(KeyBytes::new(key)) {
            Some(slot) => std::mem::replace(slot, staged),
            None => state.entries.insert(state.keys.key(key), staged).flatten(),
        };
        if let Some(old) = old {
            old.supersede();
        }
        drop(guard);
        if let Some(chunk) = sealed {
            super::encoder::encode_later(chunk);
        }
    }

    /// Removes and returns every scope's updates (their staging chunks are
    /// sealed: later sets start new ones).
    pub fn take_all(&self) -> HashMap<String, ScopeUpdates> {
        let names: Vec<String> = self.scopes.iter().map(|e| e.key().clone()).collect();
        names.into_iter().filter_map(|n| self.scopes.remove(&n)).map(|(n, s)| (n, s.entries)).collect()
    }

    pub fn drop_scope(&self, scope: &str) {
        self.scopes.remove(scope);
    }

    pub fn clear(&self) {
        self.scopes.clear();
    }

    /// Puts back the updates of a failed save; updates made since then win.
    pub fn restore(&self, updates: &HashMap<String, ScopeUpdates>) {
        for (scope, map) in updates {
            let mut current = self.scopes.entry(scope.clone()).or_default();
            for (key, value) in map {
                current.entries.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }

    pub fn scope_snapshot(&self, scope: &str) -> Option<ScopeUpdates> {
        self.scopes.get(scope).map(|s| s.entries.clone())
    }

    pub fn lookup(&self, scope: &str, key: &[u8]) -> Option<Option<Value>> {
        self.scopes.get(scope).and_then(|s| s.entries.get(KeyBytes::new(key)).cloned())
    }

    pub fn scopes_with_sets(&self) -> Vec<String> {
        self.scopes
            .iter()
            .filter(|e| e.value().entries.values().any(|v| v.is_some()))
            .map(|e| e.key().clone())
            .collect()
    }
}

/// What unsaved state does to one scope's committed contents.
#[derive(Default, Debug)]
pub struct Overlay {
    /// Committed contents are dropped (a reset is in flight).
    pub cleared: bool,
    pub entries: ScopeUpdates,
}

impl Overlay {
    pub fn build(scope: &str, inflight: &[Arc<Batch>], pending: Option<ScopeUpdates>) -> Overlay {
        let mut overlay = Overlay::default();
        for batch in inflight {
            if batch.clears(scope) {
                overlay.cleared = true;
                overlay.entries.clear();
            }
            if let Some(map) = batch.updates.get(scope) {
                overlay.entries.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        if let Some(map) = pending {
            overlay.entries.extend(map);
        }
        overlay
    }

    /// The overlay's answer for one key: `Some(None)` = removed.
    pub fn lookup(scope: &str, key: &[u8], inflight: &[Arc<Batch>], pending: &Pending) -> Option<Option<Value>> {
        if let Some(v) = pending.lookup(scope, key) {
            return Some(v);
        }
        for batch in inflight.iter().rev() {
            if let Some(v) = batch.updates.get(scope).and_then(|m| m.get(KeyBytes::new(key))) {
                return Some(v.clone());
            }
            if batch.clears(scope) {
                return Some(None);
            }
        }
        None
    }
}
