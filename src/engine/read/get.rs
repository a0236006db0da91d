//! `get`: one committed value, from the one pack whose key filter and
//! index hold it (barring filter false positives). Unsaved updates are the
//! store's to check first.

use std::sync::Arc;

use crate::engine::core::{missing_as_corrupt, Core};
use crate::engine::error::Result;
use crate::engine::layout::MANIFEST_NAME;
use crate::engine::manifest::{Manifest, PackMeta};
use crate::engine::pack::bloom;
use crate::engine::pack::format::BLOCK_SIZE;
use crate::engine::pack::reader::{PackView, Verify};
use crate::engine::par;

impl Core {
    /// The committed value of `key`, reading the newest manifest (again
    /// while a concurrent save keeps deleting the packs it names).
    pub(crate) fn get_committed_current(&self, scope: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with_current_manifest(|manifest, final_attempt| self.get_committed(manifest, scope, key, final_attempt))
            .map_err(missing_as_corrupt)
    }

    /// The committed values of `keys` (results by position), reading each
    /// pack whose key filter may hold one of them once, and each block that
    /// holds several of them once.
    pub(crate) fn get_many_committed(&self, scope: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.with_current_manifest(|manifest, final_attempt| self.get_many_in(manifest, scope, keys, final_attempt))
            .map_err(missing_as_corrupt)
    }

    /// Packs are searched in parallel, each for the keys its filter may
    /// hold: a key has one live copy (dead copies anywhere), so which pack
    /// answers does not depend on the order (were a damaged store to hold
    /// two live copies, the newest pack's wins).
    fn get_many_in(
        &self,
        manifest: &Manifest,
        scope: &str,
        keys: &[&[u8]],
        final_attempt: bool,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = vec![None; keys.len()];
        let Some(meta) = manifest.scope(scope) else { return Ok(out) };
        let hashes: Vec<(u64, u64)> = keys.iter().map(|k| bloom::key_hash(k)).collect();
        let jobs: Vec<(&PackMeta, Vec<usize>)> = meta
            .packs
            .iter()
            .rev()
            .map(|pack| (pack, (0..keys.len()).filter(|&n| bloom::may_contain(&pack.bloom, hashes[n])).collect()))
            .filter(|(_, maybe): &(_, Vec<usize>)| !maybe.is_empty())
            .collect();
        let found = par::map(jobs, |(pack, maybe)| self.live_values_in(pack, keys, maybe, final_attempt));
        for pack_found in found {
            for (n, value) in pack_found? {
                out[n].get_or_insert(value);
            }
        }
        Ok(out)
    }

    /// The live values in `pack` of the keys numbered `maybe`, each block
    /// read once.
    fn live_values_in(
        &self,
        pack: &PackMeta,
        keys: &[&[u8]],
        maybe: Vec<usize>,
        final_attempt: bool,
    ) -> Result<Vec<(usize, Vec<u8>)>> {
        let view = self.cached_view(pack).inspect_err(|e| self.note_damage(pack, e, final_attempt))?;
        let (numbers, items): (Vec<usize>, Vec<usize>) = maybe
            .into_iter()
            .filter_map(|n| view.find(keys[n]).filter(|&i| !pack.is_dead(i as u32)).map(|i| (n, i)))
            .unzip();
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let values = view.read_values(&items).inspect_err(|e| self.note_damage_of(pack.id, e, final_attempt))?;
        Ok(numbers.into_iter().zip(values).collect())
    }

    /// The committed value of `key` from state already held: the cached
    /// manifest while its file is unchanged, packs `get` has already opened
    /// and verified, at most one block of at most `BLOCK_SIZE` decoded.
    /// `None` when that is not enough (or on any error: `get` reports it).
    pub(crate) fn get_cached_committed(&self, scope: &str, key: &[u8]) -> Option<Option<Vec<u8>>> {
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
        let stamp = self.fs.stamp(&self.dir.join(MANIFEST_NAME)).ok()??;
        let cache = self.manifest_cache.lock().unwrap();
        cache.as_ref().filter(|c| c.stamp == Some(stamp)).map(|c| c.decoded.clone())
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

    pub(super) fn cached_view(&self, meta: &PackMeta) -> Result<Arc<PackView>> {
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
