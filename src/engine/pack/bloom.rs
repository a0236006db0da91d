//! A per-pack Bloom filter over keys, kept in the manifest so that `get` opens
//! only the pack that holds a key (false positives ≈1%).
//!
//! The hash is blake3: its output is stable across Rust releases and
//! platforms, which a filter persisted on disk requires.

const BITS_PER_KEY: usize = 10;
const PROBES: u64 = 7;

/// Two independent 64-bit hashes of a key (double hashing derives the probes).
pub fn key_hash(key: &[u8]) -> (u64, u64) {
    let h = blake3::hash(key);
    let b = h.as_bytes();
    let h1 = u64::from_le_bytes(b[0..8].try_into().unwrap());
    let h2 = u64::from_le_bytes(b[8..16].try_into().unwrap()) | 1;
    (h1, h2)
}

fn probes(hash: (u64, u64), bits: u64) -> impl Iterator<Item = u64> {
    (0..PROBES).map(move |i| hash.0.wrapping_add(i.wrapping_mul(hash.1)) % bits)
}

/// Builds the filter words for `keys`.
pub fn build<'a>(keys: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u64> {
    let words = (keys.len() * BITS_PER_KEY).div_ceil(64).max(1);
    let mut filter = vec![0u64; words];
    let bits = (words * 64) as u64;
    for key in keys {
        for bit in probes(key_hash(key), bits) {
            filter[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }
    filter
}

/// `false` means the key is certainly absent; an empty filter admits every key
/// (so a damaged manifest costs speed, never a wrong answer).
pub fn may_contain(filter: &[u64], hash: (u64, u64)) -> bool {
    if filter.is_empty() {
        return true;
    }
    let bits = (filter.len() * 64) as u64;
    probes(hash, bits).all(|bit| filter[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bloom_has_no_false_negatives_and_few_false_positives() {
        let keys: Vec<Vec<u8>> = (0..5000u32).map(|i| format!("key-{i}").into_bytes()).collect();
        let filter = build(keys.iter().map(|k| k.as_slice()));
        assert!(keys.iter().all(|k| may_contain(&filter, key_hash(k))));
        let false_pos =
            (0..10000u32).filter(|i| may_contain(&filter, key_hash(format!("other-{i}").as_bytes()))).count();
        assert!(false_pos < 300, "false positive rate too high: {false_pos}/10000");
    }
}
