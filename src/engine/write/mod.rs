//! Writes: `save` (merging a batch into the latest manifest, writing new
//! packs, committing), `policy` (which packs a save compacts) and `compact`
//! (reading and cutting up the packs it rewrites).

pub mod compact;
pub mod policy;
pub mod save;
