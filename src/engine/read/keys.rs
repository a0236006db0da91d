//! `keys`: a scope's live keys, from the pack indexes alone (no value block
//! is read, checked or decoded). Unsaved updates are the store's to apply.

use crate::engine::core::{missing_as_corrupt, Core};
use crate::engine::error::Result;

impl Core {
    /// The committed live keys of `scope`, in pack order.
    pub(crate) fn keys_committed(&self, scope: &str) -> Result<Vec<Vec<u8>>> {
        self.with_current_manifest(|manifest, final_attempt| {
            let Some(meta) = manifest.scope(scope) else { return Ok(Vec::new()) };
            let mut out = Vec::new();
            for pack in &meta.packs {
                let view = self.cached_view(pack).inspect_err(|e| self.note_damage(pack, e, final_attempt))?;
                out.extend((0..view.len()).filter(|&i| !pack.is_dead(i as u32)).map(|i| view.key(i).to_vec()));
            }
            Ok(out)
        })
        .map_err(missing_as_corrupt)
    }
}
