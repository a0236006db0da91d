//! Which packs a save compacts: the policy, apart from the mechanics of
//! reading and rewriting them (`compact`). Only manifest entries are looked
//! at, so the choice costs no I/O.

use crate::engine::manifest::PackMeta;

/// A pack whose dead share reaches 1/DEAD_SHARE_DIVISOR is rewritten.
const DEAD_SHARE_DIVISOR: u64 = 5;
/// Packs below pack_size / SMALL_DIVISOR count as small ...
const SMALL_DIVISOR: u64 = 4;
/// ... and once a scope has this many, they are merged.
const MAX_SMALL_PACKS: usize = 8;

/// For each of a scope's live packs (committed and staged, in order),
/// whether the save rewrites it: when a fifth of its bytes are dead, or when
/// it is small and the scope has gathered `MAX_SMALL_PACKS` small ones.
pub fn to_compact<'m>(packs: impl Iterator<Item = &'m PackMeta> + Clone, pack_size: u64) -> Vec<bool> {
    let small_limit = pack_size / SMALL_DIVISOR;
    let merge_small = packs.clone().filter(|m| m.raw_bytes < small_limit).count() >= MAX_SMALL_PACKS;
    packs
        .map(|m| {
            let sparse = m.dead_bytes * DEAD_SHARE_DIVISOR >= m.raw_bytes;
            sparse || (merge_small && m.raw_bytes < small_limit)
        })
        .collect()
}
