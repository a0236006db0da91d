//! Writes: `save` (merging a batch into the latest manifest, writing new
//! packs, committing) and `compact` (reading the packs a save rewrites).

pub mod compact;
pub mod save;
