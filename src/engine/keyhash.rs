//! The hash of keys in memory-only tables (update maps, `get`'s per-pack
//! lookup table). Never stored: it may change freely.

use std::borrow::Borrow;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::ops::Deref;

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

/// A key of an in-memory table with its hash computed once, so growing the
/// table never reads key bytes again (a cache miss per key: rehashing took a
/// tenth of the time of `set` before). Looked up by [`KeyBytes`].
#[derive(Clone, PartialEq, Eq)]
pub struct HashedKey {
    hash: u64,
    bytes: Box<[u8]>,
}

impl HashedKey {
    pub fn new(bytes: &[u8]) -> HashedKey {
        HashedKey { hash: hash_key(bytes), bytes: bytes.into() }
    }
}

impl Deref for HashedKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for HashedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.bytes))
    }
}

impl Hash for HashedKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

/// Key bytes, to look a [`HashedKey`] up by (hashed the same way).
#[derive(PartialEq, Eq)]
#[repr(transparent)]
pub struct KeyBytes([u8]);

impl KeyBytes {
    pub fn new(bytes: &[u8]) -> &KeyBytes {
        // SAFETY: `KeyBytes` is a transparent wrapper of `[u8]`.
        unsafe { &*(bytes as *const [u8] as *const KeyBytes) }
    }
}

impl Hash for KeyBytes {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(hash_key(&self.0));
    }
}

impl Borrow<KeyBytes> for HashedKey {
    fn borrow(&self) -> &KeyBytes {
        KeyBytes::new(&self.bytes)
    }
}

/// Builds the hasher of tables keyed by [`HashedKey`]: the key's hash as is.
pub type KeyTable = BuildHasherDefault<PassHasher>;

#[derive(Default)]
pub struct PassHasher(u64);

impl Hasher for PassHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else still hashes.
        bytes.iter().for_each(|&b| self.0 = self.0.rotate_left(8) ^ b as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
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

    #[test]
    fn hashed_keys_are_found_by_their_bytes_after_the_table_grows() {
        let mut table: std::collections::HashMap<HashedKey, usize, KeyTable> = Default::default();
        let keys: Vec<Vec<u8>> = (0..20_000u32).map(|i| format!("/app/src/m{i}.js").into_bytes()).collect();
        for (i, k) in keys.iter().enumerate() {
            table.insert(HashedKey::new(k), i);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(table.get(KeyBytes::new(k)), Some(&i));
        }
        assert_eq!(table.get(KeyBytes::new(b"/app/src/m20000.js")), None);
        assert_eq!(table.get(KeyBytes::new(b"")), None);
    }
}
