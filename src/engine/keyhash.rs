//! The hash of keys in memory-only tables (update maps, `get`'s per-pack
//! lookup table). Never stored: it may change freely.

use std::borrow::Borrow;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::mem::MaybeUninit;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

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
///
/// The bytes live in a [`Block`] that the keys of one [`KeyArena`] share, or
/// one of their own: an update map of 100 000 keys is then a few hundred
/// allocations, not 100 000, and dropping it (at the end of every save) no
/// longer visits each key's heap chunk (12–20 ms per save before).
#[derive(Clone)]
pub struct HashedKey {
    hash: u64,
    block: Arc<Block>,
    start: usize,
    len: usize,
}

impl HashedKey {
    /// A key with a block of its own.
    pub fn new(bytes: &[u8]) -> HashedKey {
        let block = Block::new(bytes.len());
        // SAFETY: the block is new and exactly `bytes.len()` long.
        unsafe { block.write(0, bytes) };
        HashedKey { hash: hash_key(bytes), block: Arc::new(block), start: 0, len: bytes.len() }
    }
}

impl PartialEq for HashedKey {
    fn eq(&self, other: &HashedKey) -> bool {
        self.hash == other.hash && **self == **other
    }
}

impl Eq for HashedKey {}

impl Deref for HashedKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `start..start + len` was written before this key was made
        // and is never written again (see `KeyArena::key`).
        unsafe { std::slice::from_raw_parts(self.block.ptr.as_ptr().add(self.start).cast::<u8>(), self.len) }
    }
}

/// Heap bytes, each range written once, before any key that reads it exists.
pub struct Block {
    ptr: NonNull<MaybeUninit<u8>>,
    cap: usize,
}

// SAFETY: bytes are written only by `HashedKey::new` (into its own block,
// before the block is shared) and by `KeyArena::key` (through `&mut self`,
// only past every range already handed out); written ranges are read-only.
unsafe impl Send for Block {}
// SAFETY: as for `Send`: concurrent readers only read written ranges.
unsafe impl Sync for Block {}

impl Block {
    fn new(cap: usize) -> Block {
        let boxed = Box::<[u8]>::new_uninit_slice(cap);
        let ptr = NonNull::new(Box::into_raw(boxed).cast::<MaybeUninit<u8>>()).expect("Box is never null");
        Block { ptr, cap }
    }

    /// # Safety
    /// `at..at + bytes.len()` lies inside the block and no key reads it yet.
    unsafe fn write(&self, at: usize, bytes: &[u8]) {
        debug_assert!(at + bytes.len() <= self.cap);
        // SAFETY: in bounds and unread, as the caller promises; `bytes` is
        // another allocation, so the ranges do not overlap.
        unsafe { self.ptr.as_ptr().add(at).cast::<u8>().copy_from_nonoverlapping(bytes.as_ptr(), bytes.len()) };
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `cap` came from `Box::into_raw` in `new`.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.cap)) });
    }
}

/// Copies keys back to back into shared blocks of `ARENA_BLOCK` bytes.
#[derive(Default)]
pub struct KeyArena {
    block: Option<Arc<Block>>,
    used: usize,
}

const ARENA_BLOCK: usize = 64 << 10;

impl KeyArena {
    pub fn key(&mut self, bytes: &[u8]) -> HashedKey {
        if bytes.len() > ARENA_BLOCK / 16 {
            return HashedKey::new(bytes); // rare: not worth a block's tail
        }
        let block = match &self.block {
            Some(b) if b.cap - self.used >= bytes.len() => b,
            _ => {
                self.used = 0;
                self.block.insert(Arc::new(Block::new(ARENA_BLOCK)))
            }
        };
        let start = self.used;
        // SAFETY: keys made so far read only ranges below `used`, and only
        // this arena writes to its current block.
        unsafe { block.write(start, bytes) };
        self.used += bytes.len();
        HashedKey { hash: hash_key(bytes), block: block.clone(), start, len: bytes.len() }
    }
}

impl std::fmt::Debug for HashedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
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
        KeyBytes::new(self)
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

    #[test]
    fn arena_keys_keep_their_bytes_across_blocks_and_outlive_the_arena() {
        let mut arena = KeyArena::default();
        // Lengths 0..=5000: some longer than an arena key may be, and enough
        // bytes to fill many blocks.
        let keys: Vec<Vec<u8>> = (0..3000u32).map(|i| vec![(i % 251) as u8; (i as usize * 7) % 5001]).collect();
        let mut table: std::collections::HashMap<HashedKey, usize, KeyTable> = Default::default();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(table.insert(arena.key(k), i), None, "key {i}");
        }
        drop(arena);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(table.get(KeyBytes::new(k)), Some(&i));
            let own = HashedKey::new(k);
            assert!(table.contains_key(&own), "key {i} equals its standalone copy");
            assert_eq!(&*table.get_key_value(KeyBytes::new(k)).unwrap().0.clone(), &k[..]);
        }
        assert!(HashedKey::new(b"ab") != HashedKey::new(b"ba"));
    }
}
