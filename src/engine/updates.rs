//! Unsaved sets and removes. `set`/`remove` only touch the per-scope pending
//! maps; `save()` moves them, in one step, into an in-flight [`Batch`] that
//! loads still see (read your writes) until it is committed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use dashmap::DashMap;

/// `None` is a remove.
pub type ScopeUpdates = HashMap<Vec<u8>, Option<Vec<u8>>>;

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
pub struct Pending {
    scopes: DashMap<String, ScopeUpdates>,
}

impl Pending {
    pub fn set(&self, scope: &str, key: Vec<u8>, value: Option<Vec<u8>>) {
        match self.scopes.get_mut(scope) {
            Some(mut map) => {
                map.insert(key, value);
            }
            None => {
                self.scopes.entry(scope.to_owned()).or_default().insert(key, value);
            }
        }
    }

    /// Removes and returns every scope's updates.
    pub fn take_all(&self) -> HashMap<String, ScopeUpdates> {
        let names: Vec<String> = self.scopes.iter().map(|e| e.key().clone()).collect();
        names.into_iter().filter_map(|n| self.scopes.remove(&n)).collect()
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
                current.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }

    pub fn scope_snapshot(&self, scope: &str) -> Option<ScopeUpdates> {
        self.scopes.get(scope).map(|m| m.clone())
    }

    pub fn lookup(&self, scope: &str, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.scopes.get(scope).and_then(|m| m.get(key).cloned())
    }

    pub fn scopes_with_sets(&self) -> Vec<String> {
        self.scopes
            .iter()
            .filter(|e| e.value().values().any(|v| v.is_some()))
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
    pub fn lookup(scope: &str, key: &[u8], inflight: &[Arc<Batch>], pending: &Pending) -> Option<Option<Vec<u8>>> {
        if let Some(v) = pending.lookup(scope, key) {
            return Some(v);
        }
        for batch in inflight.iter().rev() {
            if let Some(v) = batch.updates.get(scope).and_then(|m| m.get(key)) {
                return Some(v.clone());
            }
            if batch.clears(scope) {
                return Some(None);
            }
        }
        None
    }
}
