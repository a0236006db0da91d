//! The hash of keys in memory-only tables (update maps, `get`'s per-pack
//! lookup table). Never stored: it may change freely.

use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

pub type KeyHash = BuildHasherDefault<KeyHasher>;

/// The hash of one key.
pub fn hash_key(key: &[u8]) -> u64 {
    KeyHash::default().hash_one(key)
}

/// Hashes keys a word at a time (the multiply-rotate mix of rustc's FxHash).
/// Every save probes the update map once per stored key of a touched scope,
/// and loads with unsaved updates probe it once per loaded key; keys come
/// from the application's own build, so a keyed (DoS-resistant) hash would
/// cost several times more for nothing.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0xf135_7aea_2e62_a9c5);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // The multiply leaves the low bits weakest, and tables index by them:
        // fold the high half down once per key (murmur3's finalizer step).
        let h = (self.0 ^ (self.0 >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn key_hash_spreads_similar_keys_over_low_bits() {
        // Path-like keys differing in one character: the low 12 bits (what a
        // table of 4096 buckets indexes by) must still tell them apart.
        let hash = KeyHash::default();
        let buckets: HashSet<u64> =
            (0..4096u32).map(|i| hash.hash_one(format!("/app/src/module-{i:05}.js").into_bytes()) & 0xfff).collect();
        assert!(buckets.len() > 2400, "only {} of 4096 buckets used", buckets.len());
    }
}
