//! Engine tests through the public `Store` API on a real temp directory.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::engine::fs::{Blob, RealFs};

pub(super) type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn opts(root: &Path) -> Options {
    let mut o = Options::new(root, "v1");
    o.pack_size = 64 * 1024;
    o
}

fn open(o: Options) -> Store {
    Store::open(o, Arc::new(RealFs)).unwrap()
}

fn loaded(store: &Store, scope: &str) -> Model {
    store.load(scope).unwrap().into_pairs().into_iter().collect()
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough.
pub(super) fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Applies a set (`Some`) or remove (`None`) to the store and to the model of its scope.
pub(super) fn apply(
    store: &Store,
    models: &mut BTreeMap<String, Model>,
    scope: &str,
    key: String,
    value: Option<Vec<u8>>,
) {
    let model = models.entry(scope.to_string()).or_default();
    match value {
        Some(v) => {
            store.set(scope, key.as_bytes(), &v).unwrap();
            model.insert(key.into_bytes(), v);
        }
        None => {
            store.remove(scope, key.as_bytes()).unwrap();
            model.remove(key.as_bytes());
        }
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

fn pack_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".pack"))
        .count()
}

fn fill(store: &Store, scope: &str, model: &mut Model, range: std::ops::Range<u64>, value_len: usize) {
    for i in range {
        let key = format!("{scope}/module/{i:06}.js").into_bytes();
        let value = noise(i + 7, value_len);
        store.set(scope, &key, &value).unwrap();
        model.insert(key, value);
    }
}

#[test]
fn saved_pairs_load_back_identically_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(opts(tmp.path()));
    let mut model = Model::new();
    fill(&store, "modules", &mut model, 0..500, 300);
    store.set("modules", b"", b"empty key").unwrap();
    model.insert(Vec::new(), b"empty key".to_vec());
    store.set("modules", "ключ-π".as_bytes(), b"").unwrap();
    model.insert("ключ-π".as_bytes().to_vec(), Vec::new());
    let big = noise(1, 1 << 20);
    store.set("big", b"one", &big).unwrap();
    let stats = store.save().unwrap();
    assert_eq!(stats.generation, 1);
    assert_eq!(stats.items_written, 503);
    drop(store);
    let store = open(opts(tmp.path()));
    assert_eq!(loaded(&store, "modules"), model);
    assert_eq!(loaded(&store, "big").get(b"one".as_slice()), Some(&big));
    assert!(loaded(&store, "unknown").is_empty());
    assert_eq!(store.scopes().unwrap(), vec!["big".to_string(), "modules".to_string()]);
}

#[test]
fn uncompressed_packs_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = opts(tmp.path());
    o.compression = Compression::None;
    let store = open(o.clone());
    let mut model = Model::new();
    fill(&store, "s", &mut model, 0..300, 1000);
    store.save().unwrap();
    assert_eq!(loaded(&open(o), "s"), model);
}

#[test]
fn uncompressed_packs_of_a_load_share_one_mapping_and_a_damaged_one_fails_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = opts(tmp.path());
    o.compression = Compression::None;
    o.pack_size = 64 * 1024;
    let store = open(o.clone());
    let (mut a, mut b) = (Model::new(), Model::new());
    fill(&store, "a", &mut a, 0..300, 1000);
    fill(&store, "b", &mut b, 300..600, 1000);
    store.save().unwrap();
    let names = ["a".to_string(), "b".to_string()];
    let loaded: Vec<LoadedScope> = open(o.clone()).load_many(&names).unwrap().into_iter().map(Result::unwrap).collect();
    let blobs: Vec<&fs::Blob> = loaded
        .iter()
        .flat_map(|s| &s.parts)
        .map(|p| match &p.bytes {
            pairs::Bytes::Group(blob) => blob,
            _ => panic!("a raw pack served outside the load's group"),
        })
        .collect();
    assert!(blobs.len() > 4 && blobs.iter().all(|b| Arc::ptr_eq(b, blobs[0])), "one mapping for all packs");
    let models: Vec<Model> = loaded.into_iter().map(|s| s.into_pairs().into_iter().collect()).collect();
    assert_eq!(models, vec![a.clone(), b]);
    // A pack cut short (its mapping then shorter than the manifest says):
    // its scope reports corrupt, the other loads whole.
    let manifest = store.core().read_manifest().unwrap();
    let victim = store.dir().join(manifest.scope("b").unwrap().packs[0].file_name());
    let len = std::fs::metadata(&victim).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&victim).unwrap().set_len(len / 2).unwrap();
    let results = open(o).load_many(&names).unwrap();
    assert_eq!(results[0].as_ref().unwrap().len(), a.len());
    assert!(matches!(&results[1], Err(Error::Corrupted { .. })), "{:?}", results[1].as_ref().err());
}

#[test]
fn overwrites_and_removes_persist_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(opts(tmp.path()));
    let mut model = Model::new();
    fill(&store, "s", &mut model, 0..200, 100);
    store.save().unwrap();
    for i in (0..200u64).step_by(3) {
        let key = format!("s/module/{i:06}.js").into_bytes();
        if i % 2 == 0 {
            store.remove("s", &key).unwrap();
            model.remove(&key);
        } else {
            store.set("s", &key, b"changed").unwrap();
            model.insert(key, b"changed".to_vec());
        }
    }
    assert_eq!(loaded(&store, "s"), model, "read your writes before save");
    store.save().unwrap();
    let reopened = open(opts(tmp.path()));
    assert_eq!(loaded(&reopened, "s"), model);
    for (k, v) in model.iter().take(20) {
        assert_eq!(reopened.get("s", k).unwrap().as_ref(), Some(v));
    }
    assert_eq!(reopened.get("s", b"s/module/000000.js").unwrap(), None, "removed key");
}

#[test]
fn incremental_save_writes_only_changed_items() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(opts(tmp.path()));
    let mut model = Model::new();
    fill(&store, "s", &mut model, 0..5000, 200);
    let full = store.save().unwrap();
    assert!(full.packs_written > 10, "the scope spans many packs");
    // 1% changed, spread over every pack.
    for i in (0..5000u64).step_by(100) {
        let key = format!("s/module/{i:06}.js").into_bytes();
        store.set("s", &key, &noise(i + 99, 200)).unwrap();
        model.insert(key, noise(i + 99, 200));
    }
    let inc = store.save().unwrap();
    assert_eq!(inc.items_written, 50);
    assert!(inc.bytes_written * 20 < full.bytes_written, "{inc:?} vs {full:?}");
    assert_eq!(loaded(&open(opts(tmp.path())), "s"), model);
}

#[test]
fn repeated_overwrites_keep_disk_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(opts(tmp.path()));
    let mut model = Model::new();
    for round in 0..30u64 {
        for i in 0..16u64 {
            let key = format!("k{i}").into_bytes();
            let value = noise(round * 100 + i, 64 * 1024);
            store.set("s", &key, &value).unwrap();
            model.insert(key, value);
        }
        store.save().unwrap();
    }
    let used = dir_bytes(store.dir());
    assert!(used < 2 * 1024 * 1024, "30 overwrites of 1 MiB left {used} bytes");
    assert_eq!(loaded(&open(opts(tmp.path())), "s"), model);
}

#[test]
fn many_small_saves_keep_pack_count_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(opts(tmp.path()));
    let mut model = Model::new();
    for round in 0..60u64 {
        fill(&store, "s", &mut model, round * 10..round * 10 + 10, 50);
        store.save().unwrap();
    }
    assert!(pack_count(store.dir()) <= 10, "{} packs", pack_count(store.dir()));
    assert_eq!(loaded(&open(opts(tmp.path())), "s"), model);
}

#[test]
fn two_stores_saving_disjoint_keys_both_keep_their_updates() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(opts(tmp.path()));
    let b = open(opts(tmp.path()));
    let mut model = Model::new();
    fill(&a, "s", &mut model, 0..100, 50);
    fill(&b, "s", &mut model, 100..200, 50);
    a.save().unwrap();
    b.save().unwrap();
    fill(&a, "s", &mut model, 200..210, 50);
    b.set("s", b"s/module/000000.js", b"b wins").unwrap();
    model.insert(b"s/module/000000.js".to_vec(), b"b wins".to_vec());
    a.save().unwrap();
    b.save().unwrap();
    assert_eq!(loaded(&open(opts(tmp.path())), "s"), model);
}

#[test]
fn corrupt_pack_fails_only_its_scope_and_next_save_resets_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(opts(tmp.path()));
    let mut good = Model::new();
    fill(&store, "good", &mut good, 0..50, 100);
    store.set("bad", b"k", b"value that will be damaged").unwrap();
    store.save().unwrap();
    let manifest = store.core().read_manifest().unwrap();
    let bad_pack = store.dir().join(manifest.scope("bad").unwrap().packs[0].file_name());
    let mut bytes = std::fs::read(&bad_pack).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 0x01; // inside the body
    std::fs::write(&bad_pack, bytes).unwrap();

    let reader = open(opts(tmp.path()));
    assert!(matches!(reader.load("bad"), Err(Error::Corrupted { .. })));
    assert!(matches!(reader.get("bad", b"k"), Err(Error::Corrupted { .. })));
    assert_eq!(loaded(&reader, "good"), good);
    reader.set("bad", b"fresh", b"1").unwrap();
    reader.save().unwrap();
    let after = open(opts(tmp.path()));
    assert_eq!(loaded(&after, "bad"), Model::from([(b"fresh".to_vec(), b"1".to_vec())]));
    assert_eq!(loaded(&after, "good"), good);
    assert!(!bad_pack.exists(), "the corrupt pack was collected");
}

#[test]
fn damaged_manifest_is_reported_and_replaced_by_next_save() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(opts(tmp.path()));
    store.set("s", b"k", b"v").unwrap();
    store.save().unwrap();
    let path = store.dir().join(crate::engine::layout::MANIFEST_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40] ^= 0x80;
    std::fs::write(&path, bytes).unwrap();
    let store = open(opts(tmp.path()));
    assert!(matches!(store.load("s"), Err(Error::Corrupted { .. })));
    store.set("s", b"k2", b"v2").unwrap();
    store.save().unwrap();
    assert_eq!(loaded(&store, "s"), Model::from([(b"k2".to_vec(), b"v2".to_vec())]));
    assert_eq!(pack_count(store.dir()), 1, "the old pack is an orphan now and was removed");
}

#[test]
fn orphans_and_temp_files_are_removed_but_foreign_files_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(opts(tmp.path()));
    store.set("s", b"k", b"v").unwrap();
    store.save().unwrap();
    let dir = store.dir().to_path_buf();
    std::fs::write(dir.join("0123456789abcdef0123456789abcdef.pack"), b"orphan").unwrap();
    std::fs::write(dir.join("MANIFEST.tmp-1-2"), b"half written").unwrap();
    std::fs::write(dir.join(".DS_Store"), b"finder").unwrap();
    std::fs::write(tmp.path().join("notes.txt"), b"user file").unwrap();
    store.set("s", b"k2", b"v2").unwrap();
    let stats = store.save().unwrap();
    assert_eq!(stats.packs_removed, 1);
    assert!(!dir.join("0123456789abcdef0123456789abcdef.pack").exists());
    assert!(!dir.join("MANIFEST.tmp-1-2").exists());
    assert!(dir.join(".DS_Store").exists());
    assert!(tmp.path().join("notes.txt").exists());
}

#[test]
fn versions_are_isolated_and_unused_ones_expire() {
    let tmp = tempfile::tempdir().unwrap();
    let old = open(Options { version: "old".into(), ..opts(tmp.path()) });
    old.set("s", b"k", b"old").unwrap();
    old.save().unwrap();
    let old_dir = old.dir().to_path_buf();
    let past = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(old_dir.join("MANIFEST")).unwrap().set_modified(past).unwrap();

    let mut o = opts(tmp.path());
    o.expire = Some(Duration::from_secs(7200));
    let new = open(o.clone());
    assert!(loaded(&new, "s").is_empty(), "another version's data is invisible");
    new.set("s", b"k", b"new").unwrap();
    assert_eq!(new.save().unwrap().versions_expired, 0, "used within expire");
    assert!(old_dir.exists());
    o.expire = Some(Duration::from_secs(60));
    let new = open(o);
    new.set("s", b"k2", b"new").unwrap();
    assert_eq!(new.save().unwrap().versions_expired, 0, "open in a live store");
    assert_eq!(old.get("s", b"k").unwrap().as_deref(), Some(&b"old"[..]));
    old.close();
    new.set("s", b"k3", b"new").unwrap();
    assert_eq!(new.save().unwrap().versions_expired, 1);
    assert!(!old_dir.exists());
}

#[test]
fn a_version_with_a_manifest_mtime_in_the_future_still_expires() {
    let tmp = tempfile::tempdir().unwrap();
    let ahead = open(Options { version: "ahead".into(), ..opts(tmp.path()) });
    ahead.set("s", b"k", b"v").unwrap();
    ahead.save().unwrap();
    let manifest = ahead.dir().join("MANIFEST");
    ahead.close();
    let year_2150 = SystemTime::UNIX_EPOCH + Duration::from_secs(5_680_281_600);
    std::fs::File::options().write(true).open(&manifest).unwrap().set_modified(year_2150).unwrap();
    let mut o = opts(tmp.path());
    o.expire = Some(Duration::ZERO);
    let store = open(o);
    store.set("s", b"k", b"v").unwrap();
    assert_eq!(store.save().unwrap().versions_expired, 0, "its age starts over now");
    let restarted = std::fs::metadata(&manifest).unwrap().modified().unwrap();
    assert!(restarted <= SystemTime::now() + Duration::from_secs(1), "{restarted:?}");
    std::thread::sleep(Duration::from_millis(5));
    store.set("s", b"k", b"v2").unwrap();
    assert_eq!(store.save().unwrap().versions_expired, 1);
    assert!(!manifest.exists());
}

/// The codec is per pack: a store that switches `compression` between
/// saves reads every pack it wrote before, and compaction rewrites packs of
/// another codec with the current one (copying blocks as stored only when
/// their codec is the current one, or they are raw).
#[test]
fn packs_of_every_codec_coexist_and_compaction_rewrites_with_the_current_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let set = |store: &Store, model: &mut Model, k: u64, round: usize| {
        let key = format!("s/module/{k:04}.js").into_bytes();
        // ≈ 30 KiB: two values a block, so a compacted pack has blocks that
        // stay wholly live (copied as stored when their codec allows).
        let value = format!("export const v{k} = {round}; // {k}\n").repeat(900 + (k as usize % 50)).into_bytes();
        store.set("s", &key, &value).unwrap();
        model.insert(key, value);
    };
    let codecs = [Compression::Zstd(1), Compression::Lz4, Compression::None, Compression::Lz4, Compression::Zstd(3)];
    let opts = |root: &Path| Options { pack_size: 1 << 20, ..opts(root) };
    for (round, compression) in codecs.into_iter().enumerate() {
        let store = open(Options { compression, ..opts(tmp.path()) });
        assert_eq!(loaded(&store, "s"), model, "round {round}: every earlier pack reads back");
        for k in round as u64 * 40..round as u64 * 40 + 60 {
            set(&store, &mut model, k, round); // overlaps the last round: dead copies
        }
        store.save().unwrap();
        assert_eq!(loaded(&open(opts(tmp.path())), "s"), model, "round {round}: after a save with {compression:?}");
    }
    // A third of the keys set again: packs that lose a fifth of their bytes
    // are compacted, their blocks of another codec decoded and encoded again.
    let store = open(Options { compression: Compression::Zstd(1), ..opts(tmp.path()) });
    let codecs_of = |store: &Store| -> HashMap<[u8; 32], pack::format::Codec> {
        let manifest = store.core().read_manifest().unwrap();
        let packs = &manifest.scope("s").unwrap().packs;
        packs.iter().map(|m| (m.id, store.core().open_pack(m, pack::reader::Verify::Full).unwrap().codec())).collect()
    };
    let before = codecs_of(&store);
    for k in (0..model.len() as u64).step_by(3) {
        set(&store, &mut model, k, 99);
    }
    store.save().unwrap();
    assert_eq!(loaded(&open(opts(tmp.path())), "s"), model);
    let after = codecs_of(&store);
    let gone_lz4 = before.iter().filter(|(id, c)| **c == pack::format::Codec::Lz4 && !after.contains_key(*id)).count();
    assert!(gone_lz4 > 0, "some lz4 pack was compacted");
    for (id, codec) in after.iter().filter(|(id, _)| !before.contains_key(*id)) {
        assert_eq!(*codec, pack::format::Codec::Zstd, "pack {id:?} written under zstd");
    }
}

/// A release with another pack format uses a directory of its own: an older
/// format's directory expires like an unused version, a newer one's is kept.
#[test]
fn older_format_directories_expire_and_newer_ones_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let past = SystemTime::now() - Duration::from_secs(3600);
    let older = tmp.path().join(format!("pc1-{}", "0".repeat(32)));
    let format2 = tmp.path().join(format!("pc2-{}", "0".repeat(32)));
    let newer = tmp.path().join(format!("pc4-{}", "0".repeat(32)));
    for dir in [&older, &format2, &newer] {
        std::fs::create_dir(dir).unwrap();
        let manifest = std::fs::File::create(dir.join("MANIFEST")).unwrap();
        manifest.set_modified(past).unwrap();
    }
    let mut o = opts(tmp.path());
    o.expire = Some(Duration::from_secs(60));
    let store = open(o);
    assert!(store.dir().file_name().unwrap().to_string_lossy().starts_with("pc3-"));
    store.set("s", b"k", b"v").unwrap();
    assert_eq!(store.save().unwrap().versions_expired, 2);
    assert!(!older.exists() && !format2.exists() && newer.exists());
}

#[test]
fn readonly_store_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("missing");
    let mut o = opts(&root);
    o.readonly = true;
    let store = open(o);
    store.set("s", b"k", b"v").unwrap();
    assert_eq!(loaded(&store, "s").len(), 1, "unsaved sets are visible");
    assert!(matches!(store.save(), Err(Error::ReadOnly(_))));
    assert!(matches!(store.reset(None), Err(Error::ReadOnly(_))));
    assert!(!root.exists());
}

#[test]
fn set_during_save_goes_into_the_next_save() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(opts(tmp.path()));
    store.set("s", b"first", b"1").unwrap();
    let batch = store.begin_save().unwrap();
    store.set("s", b"second", b"2").unwrap();
    assert_eq!(loaded(&store, "s").len(), 2, "in-flight and pending both visible");
    store.finish(batch).unwrap();
    assert_eq!(loaded(&open(opts(tmp.path())), "s").len(), 1);
    store.save().unwrap();
    assert_eq!(loaded(&open(opts(tmp.path())), "s").len(), 2);
}

#[test]
fn saves_commit_in_call_order() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(open(opts(tmp.path())));
    let mut handles = Vec::new();
    for round in 0..8u8 {
        store.set("s", b"k", &[round]).unwrap();
        let batch = store.begin_save().unwrap();
        let s = store.clone();
        handles.push(std::thread::spawn(move || s.finish(batch).unwrap().generation));
    }
    let generations: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(generations, (1..=8).collect::<Vec<u64>>());
    assert_eq!(open(opts(tmp.path())).get("s", b"k").unwrap(), Some(vec![7]));
}

#[test]
fn reset_drops_one_scope_or_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(opts(tmp.path()));
    store.set("a", b"k", b"v").unwrap();
    store.set("b", b"k", b"v").unwrap();
    store.save().unwrap();
    store.set("a", b"unsaved", b"v").unwrap();
    store.reset(Some("a")).unwrap();
    assert!(loaded(&store, "a").is_empty());
    assert_eq!(store.scopes().unwrap(), vec!["b".to_string()]);
    store.save().unwrap();
    assert!(loaded(&open(opts(tmp.path())), "a").is_empty(), "unsaved update was dropped too");
    store.reset(None).unwrap();
    assert!(store.scopes().unwrap().is_empty());
    assert_eq!(pack_count(store.dir()), 0);
}

#[test]
fn invalid_scope_names_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(opts(tmp.path()));
    for bad in ["", ".", "..", "a/b", "a\\b", "a\0b", "ü", &"x".repeat(129)] {
        assert!(matches!(store.set(bad, b"k", b"v"), Err(Error::InvalidArg(_))), "{bad:?}");
        assert!(matches!(store.load(bad), Err(Error::InvalidArg(_))), "{bad:?}");
    }
    assert!(store.set(&"x".repeat(128), b"k", b"v").is_ok());
    assert!(store.set("a.B-c_9", b"k", b"v").is_ok());
}

#[test]
fn failed_save_keeps_previous_generation_and_retries_updates() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = fs::fault::FaultFs::healthy();
    let store = Store::open(opts(tmp.path()), fs.clone()).unwrap();
    store.set("s", b"k", b"v1").unwrap();
    store.save().unwrap();
    store.set("s", b"k", b"v2").unwrap();
    store.set("s", b"other", b"x").unwrap();
    fs.arm(0, fs::fault::FaultMode::Persistent, std::io::ErrorKind::StorageFull);
    let err = store.save().unwrap_err();
    assert_eq!(err.code(), "PACKCACHE_IO");
    assert_eq!(open(opts(tmp.path())).get("s", b"k").unwrap(), Some(b"v1".to_vec()));
    assert_eq!(store.get("s", b"k").unwrap(), Some(b"v2".to_vec()), "updates kept in memory");
    fs.disarm();
    store.save().unwrap();
    let reopened = open(opts(tmp.path()));
    assert_eq!(reopened.get("s", b"k").unwrap(), Some(b"v2".to_vec()));
    assert_eq!(reopened.get("s", b"other").unwrap(), Some(b"x".to_vec()));
}

fn sample_pack(compression: Compression) -> pack::writer::EncodedPack {
    let values: Vec<Vec<u8>> =
        (0..40u64).map(|i| if i % 5 == 0 { Vec::new() } else { b"abcabc".repeat(i as usize * 30) }).collect();
    let keys: Vec<Vec<u8>> = (0..40u64).map(|i| format!("key{i}").into_bytes()).collect();
    let items: Vec<(&[u8], &[u8])> = keys.iter().zip(&values).map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    pack::writer::encode_pack("scope", 3, &items, compression).unwrap()
}

#[test]
fn get_cached_answers_only_from_verified_unchanged_state() {
    let tmp = tempfile::tempdir().unwrap();
    let writer = open(opts(tmp.path()));
    writer.set("s", b"k", b"v1").unwrap();
    writer.set("s", b"other", b"x").unwrap();
    writer.save().unwrap();
    let reader = open(opts(tmp.path()));
    assert_eq!(reader.get_cached("s", b"k"), None, "no pack open yet");
    assert_eq!(reader.get("s", b"k").unwrap(), Some(b"v1".to_vec()));
    assert_eq!(reader.get_cached("s", b"k"), Some(Some(b"v1".to_vec())));
    assert_eq!(reader.get_cached("s", b"missing"), Some(None));
    assert_eq!(reader.get_cached("unknown-scope", b"k"), Some(None));
    // Another instance commits: the manifest file changed, so not from cache.
    writer.set("s", b"k", b"v2").unwrap();
    writer.save().unwrap();
    assert_eq!(reader.get_cached("s", b"k"), None);
    assert_eq!(reader.get("s", b"k").unwrap(), Some(b"v2".to_vec()));
    // Unsaved updates are left to `get`.
    reader.set("s", b"other", b"y").unwrap();
    assert_eq!(reader.get_cached("s", b"other"), None);
    assert_eq!(reader.get("s", b"other").unwrap(), Some(b"y".to_vec()));
}

#[test]
fn find_locates_every_key_of_a_large_pack_and_no_other() {
    let keys: Vec<Vec<u8>> = (0..3000u32).map(|i| format!("/src/m{i}.js").into_bytes()).collect();
    let items: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_slice(), &k[..3])).collect();
    let pack = pack::writer::encode_pack("s", 1, &items, Compression::Zstd(1)).unwrap();
    let view = pack::reader::PackView::open(Arc::new(pack.to_bytes()), &pack.id, pack::reader::Verify::Full).unwrap();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(view.find(k), Some(i));
    }
    for missing in [&b"/src/m3000.js"[..], b"", b"/src/m1.j", b"/src/m1.jss"] {
        assert_eq!(view.find(missing), None);
    }
}

#[test]
fn pack_reader_returns_what_the_writer_wrote() {
    for compression in [Compression::None, Compression::Zstd(1), Compression::Zstd(19), Compression::Lz4] {
        let pack = sample_pack(compression);
        let blob: Blob = Arc::new(pack.to_bytes());
        let view = pack::reader::PackView::open(blob, &pack.id, pack::reader::Verify::Full).unwrap();
        assert_eq!((view.len(), view.generation(), view.scope()), (40, 3, b"scope".as_slice()));
        let body = view.decode_body().unwrap();
        for i in 0..40usize {
            let expect = if i % 5 == 0 { Vec::new() } else { b"abcabc".repeat(i * 30) };
            assert_eq!(view.key(i), format!("key{i}").as_bytes());
            assert_eq!(&body.bytes()[view.value_range(i)], expect.as_slice());
            assert_eq!(view.read_value(view.find(format!("key{i}").as_bytes()).unwrap()).unwrap(), expect);
        }
        if compression != Compression::None {
            assert!((pack.file_len() as usize) < pack.raw_bytes as usize / 4, "repetitive values compress");
        }
    }
}

/// Every single-byte change of a pack is caught by the full check: the reader
/// never hands out bytes from a damaged pack.
#[test]
fn every_flipped_pack_byte_is_reported_corrupt() {
    for compression in [Compression::Zstd(1), Compression::Lz4] {
        let pack = sample_pack(compression);
        let whole = pack.to_bytes();
        for pos in 0..whole.len() {
            let mut bytes = whole.clone();
            bytes[pos] ^= 0x20;
            let result = pack::reader::PackView::open(Arc::new(bytes), &pack.id, pack::reader::Verify::Full);
            assert!(
                matches!(result, Err(Error::Corrupted { .. })),
                "{compression:?}: byte {pos} flipped went unnoticed"
            );
        }
        for len in [0, 10, 95, 96, 200, whole.len() - 1] {
            let result =
                pack::reader::PackView::open(Arc::new(whole[..len].to_vec()), &pack.id, pack::reader::Verify::Full);
            assert!(matches!(result, Err(Error::Corrupted { .. })), "truncation to {len} went unnoticed");
        }
    }
}

/// With blocks checked as they are read, damage to one block fails the reads
/// of that block's values and no other: everything else reads back exactly.
#[test]
fn a_flipped_body_byte_fails_only_the_values_of_its_block() {
    let values: Vec<Vec<u8>> = (0..300u64).map(|i| noise(i, 40 + (i as usize % 7) * 30)).collect();
    let keys: Vec<Vec<u8>> = (0..300u64).map(|i| format!("key{i}").into_bytes()).collect();
    let items: Vec<(&[u8], &[u8])> = keys.iter().zip(&values).map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    for compression in [Compression::None, Compression::Zstd(1), Compression::Lz4] {
        let whole = pack::writer::encode_pack("scope", 1, &items, compression).unwrap().to_bytes();
        let id: [u8; 32] = whole[whole.len() - 32..].try_into().unwrap();
        let body_off = pack::format::Header::read(&whole).unwrap().body_off();
        for pos in (body_off..whole.len() - 32).step_by(97) {
            let mut bytes = whole.clone();
            bytes[pos] ^= 0x20;
            let view = pack::reader::PackView::open(Arc::new(bytes), &id, pack::reader::Verify::OnRead).unwrap();
            let mut failed = 0;
            for (i, value) in values.iter().enumerate() {
                match view.read_value(i) {
                    Ok(got) => assert_eq!(&got, value, "byte {pos} flipped: item {i} read wrong bytes"),
                    Err(Error::Corrupted { .. }) => failed += 1,
                    Err(e) => panic!("byte {pos} flipped: item {i}: {e}"),
                }
            }
            assert!((1..=pack::format::BLOCK_ITEMS).contains(&failed), "byte {pos} flipped: {failed} reads failed");
            assert!(matches!(view.decode_body(), Err(Error::Corrupted { .. })), "byte {pos}: whole body read");
        }
    }
}

#[test]
fn get_reads_intact_blocks_of_a_damaged_pack_and_the_next_save_resets_its_scope() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(opts(tmp.path()));
    let mut model = Model::new();
    fill(&store, "s", &mut model, 0..200, 50);
    store.save().unwrap();
    let manifest = store.core().read_manifest().unwrap();
    assert_eq!(manifest.scope("s").unwrap().packs.len(), 1);
    let pack = store.dir().join(manifest.scope("s").unwrap().packs[0].file_name());
    let mut bytes = std::fs::read(&pack).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 0x01; // inside the last block
    std::fs::write(&pack, bytes).unwrap();

    let reader = open(opts(tmp.path()));
    let (first, last) = (model.keys().next().unwrap(), model.keys().last().unwrap());
    assert_eq!(reader.get("s", first).unwrap().as_ref(), Some(&model[first]));
    assert!(matches!(reader.get("s", last), Err(Error::Corrupted { .. })));
    assert_eq!(reader.get_cached("s", last), None, "a failed block is not served from the cache either");
    reader.set("other", b"k", b"v").unwrap();
    reader.save().unwrap();
    assert_eq!(loaded(&open(opts(tmp.path())), "s"), Model::new(), "the damaged scope was reset");
    assert!(!pack.exists(), "the damaged pack was collected");
}

#[test]
fn every_flipped_manifest_byte_is_reported_corrupt() {
    let manifest = manifest::Manifest {
        generation: 9,
        version: "v".into(),
        scopes: vec![manifest::ScopeMeta {
            name: "s".into(),
            packs: vec![manifest::PackMeta {
                id: [7; 32],
                file_len: 100,
                items: 3,
                dead: vec![1],
                ..Default::default()
            }],
        }],
    };
    let bytes = manifest.encode().unwrap();
    assert_eq!(manifest::Manifest::decode(&bytes).unwrap(), manifest);
    for pos in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x01;
        assert!(matches!(manifest::Manifest::decode(&bad), Err(Error::Corrupted { .. })), "byte {pos}");
    }
    assert!(manifest::Manifest::decode(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn a_save_of_few_keys_maps_only_the_packs_whose_filter_may_hold_them() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = fs::fault::FaultFs::healthy();
    let mut o = opts(tmp.path());
    o.pack_size = 4096;
    let store = Store::open(o.clone(), fs.clone()).unwrap();
    let mut model = Model::new();
    for i in 0..400u64 {
        let (key, value) = (format!("key-{i}").into_bytes(), noise(i, 100));
        store.set("s", &key, &value).unwrap();
        model.insert(key, value);
    }
    store.save().unwrap();
    let packs = store.core().read_manifest().unwrap().scope("s").unwrap().packs.len();
    assert!(packs >= 10, "{packs} packs");
    store.set("s", b"key-7", b"new").unwrap();
    model.insert(b"key-7".to_vec(), b"new".to_vec());
    let before = fs.count("mmap");
    store.save().unwrap();
    let mapped = fs.count("mmap") - before;
    assert!(mapped <= 2, "a one-key save mapped {mapped} of {packs} packs");
    // The old copy was found and marked dead all the same: one live copy.
    let reopened = open(o);
    assert_eq!(reopened.load("s").unwrap().len(), 400);
    assert_eq!(loaded(&reopened, "s"), model);
}

mod compaction;
mod corruption;
mod crash;
mod faults;
mod fuzz_corpus;
mod readers;
mod staging;

/// `get_many` answers exactly as one `get` per key would: across packs
/// (overwritten and removed keys among them), unsaved updates first,
/// missing and repeated keys included, results by position.
#[test]
fn get_many_answers_as_get_does_for_every_key() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(opts(tmp.path()));
    let mut model = Model::new();
    fill(&store, "s", &mut model, 0..120, 700);
    store.save().unwrap();
    fill(&store, "s", &mut model, 80..160, 300); // overwrites: dead copies in older packs
    for i in (0..40).step_by(4) {
        let key = format!("s/module/{i:06}.js").into_bytes();
        store.remove("s", &key).unwrap();
        model.remove(&key);
    }
    store.save().unwrap();
    fill(&store, "s", &mut model, 150..170, 90); // unsaved
    store.remove("s", b"s/module/000001.js").unwrap();
    model.remove(&b"s/module/000001.js"[..]);
    let mut keys: Vec<Vec<u8>> = (0..180u64).map(|i| format!("s/module/{i:06}.js").into_bytes()).collect();
    keys.push(b"missing".to_vec());
    keys.push(keys[100].clone());
    let many = store.get_many("s", &keys).unwrap();
    assert_eq!(many.len(), keys.len());
    for (key, got) in keys.iter().zip(&many) {
        assert_eq!(got.as_ref(), model.get(key), "{}", String::from_utf8_lossy(key));
        assert_eq!(got, &store.get("s", key).unwrap());
    }
    assert_eq!(store.get_many("other", &keys[..3]).unwrap(), vec![None, None, None]);
    assert!(store.get_many("s", &[]).unwrap().is_empty());
}
