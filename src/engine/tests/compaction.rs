//! Compaction copies the blocks whose values all stay live as they are
//! stored, and decodes and encodes again only the blocks that lost one.

use std::collections::HashSet;
use std::sync::Arc;

use super::super::*;
use super::Model;
use crate::engine::fs::RealFs;
use crate::engine::pack::reader::{PackView, Verify};

fn store(root: &std::path::Path, compression: Compression) -> Store {
    let mut o = Options::new(root, "v1");
    o.pack_size = 1 << 20;
    o.compression = compression;
    Store::open(o, Arc::new(RealFs)).unwrap()
}

/// 40 compressible values of 20 000 bytes, about three to a block.
fn fill(store: &Store) -> Model {
    let mut model = Model::new();
    for i in 0..40u64 {
        let line = format!("export function item{i}(x) {{ return x * {i} + {}; }}\n", i * 7);
        let value: Vec<u8> = line.bytes().cycle().take(20_000).collect();
        let key = format!("k{i:02}").into_bytes();
        store.set("s", &key, &value).unwrap();
        model.insert(key, value);
    }
    store.save().unwrap();
    model
}

/// The scope's packs, every block checked.
fn packs(store: &Store) -> Vec<PackView> {
    let manifest = store.core().read_manifest().unwrap();
    manifest.scope("s").unwrap().packs.iter().map(|m| store.core().open_pack(m, Verify::Full).unwrap()).collect()
}

/// Each block of a pack as stored, with the keys of its values.
fn blocks(view: &PackView) -> Vec<(Vec<u8>, HashSet<Vec<u8>>)> {
    (0..view.block_count())
        .map(|b| {
            let raw = view.block_raw_range(b);
            let keys = (0..view.len())
                .filter(|&i| !view.value_range(i).is_empty() && raw.contains(&view.value_range(i).start))
                .map(|i| view.key(i).to_vec())
                .collect();
            (view.stored_block(b).unwrap().0.to_vec(), keys)
        })
        .collect()
}

fn remove_first(store: &Store, model: &mut Model, n: usize) {
    let keys: Vec<Vec<u8>> = model.keys().take(n).cloned().collect();
    for key in keys {
        store.remove("s", &key).unwrap();
        model.remove(&key);
    }
    store.save().unwrap();
}

fn loaded(store: &Store) -> Model {
    store.load("s").unwrap().into_pairs().into_iter().collect()
}

#[test]
fn compaction_copies_wholly_live_blocks_as_stored_and_encodes_only_the_rest_again() {
    let tmp = tempfile::tempdir().unwrap();
    // Written at level 3, compacted by a level-1 store: a block encoded
    // again cannot come out as the stored one.
    let mut model = fill(&store(tmp.path(), Compression::Zstd(3)));
    let s = store(tmp.path(), Compression::Zstd(1));
    let before = packs(&s);
    assert_eq!(before.len(), 1, "one pack to start with");
    let old_blocks = blocks(&before[0]);
    // A quarter of the values removed: the pack is rewritten.
    remove_first(&s, &mut model, 10);
    let after = packs(&s);
    assert!(after.iter().all(|v| v.generation() == 2), "the old pack was compacted away");
    let new_blocks: HashSet<Vec<u8>> = after.iter().flat_map(blocks).map(|(stored, _)| stored).collect();
    let (mut copied, mut encoded) = (0, 0);
    for (stored, keys) in &old_blocks {
        let all_live = keys.iter().all(|k| model.contains_key(k));
        if all_live {
            assert!(new_blocks.contains(stored), "a wholly live block was not copied as stored");
            copied += 1;
        } else if keys.iter().any(|k| model.contains_key(k)) {
            assert!(!new_blocks.contains(stored), "a block that lost a value was copied");
            encoded += 1;
        }
    }
    assert!(copied >= 5 && encoded >= 1, "copied {copied}, encoded again {encoded}");
    assert_eq!(loaded(&s), model);
    assert_eq!(loaded(&store(tmp.path(), Compression::Zstd(1))), model);
}

#[test]
fn a_none_store_compacting_compressed_packs_writes_them_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let mut model = fill(&store(tmp.path(), Compression::Zstd(3)));
    let s = store(tmp.path(), Compression::None);
    remove_first(&s, &mut model, 12);
    let after = packs(&s);
    assert!(!after.is_empty());
    for view in &after {
        assert!(view.is_raw_in_place(), "a compressed block was copied into a 'none' store's pack");
    }
    assert_eq!(loaded(&s), model);
    assert_eq!(loaded(&store(tmp.path(), Compression::Zstd(1))), model);
}

/// Generations of random sets (empty, small, compressible and incompressible
/// values) and removes, saved by stores that switch compression between
/// generations: every load matches the model, whichever blocks compaction
/// copied, skipped or encoded again.
#[test]
fn compacting_random_generations_keeps_every_live_value() {
    let tmp = tempfile::tempdir().unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut model = Model::new();
    let compressions = [Compression::Zstd(1), Compression::None, Compression::Lz4, Compression::Zstd(3)];
    for generation in 0..24u64 {
        let mut o = Options::new(tmp.path(), "v1");
        o.pack_size = 256 << 10;
        o.compression = compressions[(generation / 3) as usize % compressions.len()];
        let s = Store::open(o, Arc::new(RealFs)).unwrap();
        for _ in 0..if generation == 0 { 300 } else { 40 } {
            let key = format!("key-{:03}", next(300)).into_bytes();
            let value = match next(10) {
                0 => {
                    s.remove("s", &key).unwrap();
                    model.remove(&key);
                    continue;
                }
                1 => Vec::new(),
                2 | 3 => super::noise(next(1 << 20), next(100) as usize + 1),
                4 => super::noise(next(1 << 20), next(30_000) as usize + 5_000),
                _ => format!("{generation} {key:?} ").bytes().cycle().take(next(30_000) as usize + 5_000).collect(),
            };
            s.set("s", &key, &value).unwrap();
            model.insert(key, value);
        }
        s.save().unwrap();
        assert_eq!(loaded(&s), model, "generation {generation}");
    }
    let reopened = store(tmp.path(), Compression::Zstd(1));
    assert_eq!(loaded(&reopened), model);
    for (key, value) in &model {
        assert_eq!(reopened.get("s", key).unwrap().as_ref(), Some(value));
    }
}
