//! Sets staged into chunks and encoded in the background: whatever was
//! encoded when, every read sees the latest value and a save stores each key
//! once live.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::super::*;
use super::{apply, noise, Model};
use crate::engine::fs::RealFs;
use crate::engine::pack::reader::Verify;

fn options(root: &std::path::Path) -> Options {
    let mut o = Options::new(root, "v1");
    o.pack_size = 1024;
    o
}

fn check_reads(store: &Store, models: &BTreeMap<String, Model>, when: &str) {
    for (scope, model) in models {
        let loaded: Model = store.load(scope).unwrap().into_pairs().into_iter().collect();
        assert_eq!(&loaded, model, "{when}: load of {scope}");
        for i in 0..240u64 {
            let key = format!("k{i}");
            assert_eq!(
                store.get(scope, key.as_bytes()).unwrap().as_ref(),
                model.get(key.as_bytes()),
                "{when}: get {scope}/{key}"
            );
        }
    }
}

/// Each pack holds a key once, and a scope holds one live copy of each key.
fn check_packs(store: &Store, models: &BTreeMap<String, Model>) {
    let manifest = manifest::read(&*store.core().fs, store.dir()).unwrap().unwrap();
    for scope in &manifest.scopes {
        let mut live = HashSet::new();
        for meta in &scope.packs {
            let view = store.core().open_pack(meta, Verify::Full).unwrap();
            let keys: HashSet<&[u8]> = (0..view.len()).map(|i| view.key(i)).collect();
            assert_eq!(keys.len(), view.len(), "a key twice in one pack");
            for i in (0..view.len()).filter(|&i| !meta.is_dead(i as u32)) {
                assert!(live.insert(view.key(i).to_vec()), "two live copies of a key");
            }
        }
        let expect: HashSet<Vec<u8>> = models[&scope.name].keys().cloned().collect();
        assert_eq!(live, expect, "live keys of {}", scope.name);
    }
}

#[test]
fn keys_set_again_across_encoded_chunks_read_their_latest_value() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(options(tmp.path()), Arc::new(RealFs)).unwrap();
    let mut models = BTreeMap::new();
    for round in 0..3u64 {
        for scope in ["a", "b"] {
            for i in 0..240u64 {
                apply(&store, &mut models, scope, format!("k{i}"), Some(noise(i * 31 + round, 40 + (i as usize % 90))));
            }
        }
        // Give the background encoder time to finish sealed chunks, so later
        // overwrites hit encoded chunks as well as raw ones.
        std::thread::sleep(std::time::Duration::from_millis(30));
        // Every tenth key: too few for a staged pack to be compacted, so
        // packs with dead copies of keys are written as they are.
        for i in (0..240u64).filter(|i| i % 10 == round) {
            apply(&store, &mut models, "a", format!("k{i}"), Some(noise(i + 1000 * round, 70)));
            apply(&store, &mut models, "b", format!("k{i}"), None);
        }
        check_reads(&store, &models, &format!("round {round}, before save"));
        store.save().unwrap();
        check_reads(&store, &models, &format!("round {round}, after save"));
        check_packs(&store, &models);
    }
    drop(store);
    let reopened = Store::open(options(tmp.path()), Arc::new(RealFs)).unwrap();
    check_reads(&reopened, &models, "reopened");
}

#[test]
fn a_set_after_save_began_is_not_in_that_save() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(options(tmp.path()), Arc::new(RealFs)).unwrap();
    store.set("s", b"k", b"first").unwrap();
    let batch = store.begin_save().unwrap();
    // Same scope, same key: must start a new chunk, not join the taken one.
    store.set("s", b"k", b"second").unwrap();
    store.finish(batch).unwrap();
    let reopened = Store::open(options(tmp.path()), Arc::new(RealFs)).unwrap();
    assert_eq!(reopened.get("s", b"k").unwrap(), Some(b"first".to_vec()));
    store.save().unwrap();
    let reopened = Store::open(options(tmp.path()), Arc::new(RealFs)).unwrap();
    assert_eq!(reopened.get("s", b"k").unwrap(), Some(b"second".to_vec()));
}

/// Stage files and stage lock files in `dir`.
fn stage_names(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> =
        entries.map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n.starts_with("stage-")).collect();
    names.sort();
    names
}

fn stage_files(dir: &std::path::Path) -> Vec<String> {
    stage_names(dir).into_iter().filter(|n| n.ends_with(".pack")).collect()
}

/// Waits (up to 20 s) for the background encoders to spill `at_least` files.
fn wait_for_stage_files(dir: &std::path::Path, at_least: usize) -> Vec<String> {
    for _ in 0..2000 {
        let names = stage_files(dir);
        if names.len() >= at_least {
            return names;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("no stage files appeared in {}", dir.display());
}

fn fill_chunks(store: &Store, models: &mut BTreeMap<String, Model>, scope: &str, seed: u64) {
    for i in 0..200u64 {
        apply(store, models, scope, format!("k{i}"), Some(noise(i * 7 + seed, 100 + (i as usize % 50))));
    }
}

#[test]
fn a_live_stores_stage_files_survive_another_stores_save_and_are_linked_by_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Store::open(options(tmp.path()), Arc::new(RealFs)).unwrap();
    let mut models = BTreeMap::new();
    fill_chunks(&a, &mut models, "a", 1);
    let spilled = wait_for_stage_files(a.dir(), 3);
    // Another store (as another process would) saves and collects garbage.
    let b = Store::open(options(tmp.path()), Arc::new(RealFs)).unwrap();
    apply(&b, &mut models, "b", "only".into(), Some(b"from b".to_vec()));
    b.save().unwrap();
    let after_b = stage_files(a.dir());
    assert!(spilled.iter().all(|n| after_b.contains(n)), "b's save deleted a's stage files: {spilled:?} → {after_b:?}");
    check_reads(&a, &BTreeMap::from([("a".to_string(), models["a"].clone())]), "unsaved, spilled");
    a.save().unwrap();
    // The store let go of its stage lock with its last stage file.
    assert_eq!(stage_names(a.dir()), Vec::<String>::new(), "stage files outlived the save that committed them");
    let reopened = Store::open(options(tmp.path()), Arc::new(RealFs)).unwrap();
    check_reads(&reopened, &models, "reopened");
    check_packs(&reopened, &models);
}

#[test]
fn stage_files_of_a_store_that_is_gone_are_removed_by_the_next_save() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(options(tmp.path()), Arc::new(RealFs)).unwrap();
    store.set("s", b"k", b"v").unwrap();
    store.save().unwrap();
    // What a killed process leaves: its stage files and an unlocked lock file.
    let dir = store.dir().to_path_buf();
    for name in ["stage-00112233aabbccdd-0.pack", "stage-00112233aabbccdd-7.pack", "stage-00112233aabbccdd.lock"] {
        std::fs::write(dir.join(name), b"left behind").unwrap();
    }
    std::fs::write(dir.join("stage-notours.pack"), b"foreign").unwrap();
    store.set("s", b"k2", b"v2").unwrap();
    store.save().unwrap();
    let mut left: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.retain(|n| n.starts_with("stage-"));
    assert_eq!(left, vec!["stage-notours.pack".to_string()], "only names packcache creates are deleted");
    assert_eq!(store.get("s", b"k2").unwrap().as_deref(), Some(&b"v2"[..]));
}

#[test]
fn a_failed_stage_claim_keeps_chunks_in_memory_and_is_retried_later() {
    use crate::engine::fs::fault::{FaultFs, FaultMode};
    let tmp = tempfile::tempdir().unwrap();
    let fs = FaultFs::healthy();
    let store = Store::open(options(tmp.path()), fs.clone()).unwrap();
    let mut models = BTreeMap::new();
    fs.arm(0, FaultMode::Persistent, std::io::ErrorKind::PermissionDenied);
    fill_chunks(&store, &mut models, "a", 4);
    for _ in 0..2000 {
        if fs.fired() > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(fs.fired() > 0, "no chunk tried to spill");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(stage_files(store.dir()), Vec::<String>::new());
    fs.disarm();
    std::thread::sleep(std::time::Duration::from_millis(100));
    fill_chunks(&store, &mut models, "b", 5);
    wait_for_stage_files(store.dir(), 1);
    check_reads(&store, &models, "unsaved, partly in memory");
    store.save().unwrap();
    let reopened = Store::open(options(tmp.path()), Arc::new(RealFs)).unwrap();
    check_reads(&reopened, &models, "saved");
    assert_eq!(stage_names(store.dir()), Vec::<String>::new());
}

#[test]
fn a_failed_save_keeps_spilled_chunks_for_the_next_save() {
    use crate::engine::fs::fault::{FaultFs, FaultMode};
    let tmp = tempfile::tempdir().unwrap();
    let fs = FaultFs::healthy();
    let store = Store::open(options(tmp.path()), fs.clone()).unwrap();
    let mut models = BTreeMap::new();
    fill_chunks(&store, &mut models, "a", 2);
    let spilled = wait_for_stage_files(store.dir(), 3);
    fs.arm(0, FaultMode::Persistent, std::io::ErrorKind::StorageFull);
    assert_eq!(store.save().unwrap_err().code(), "PACKCACHE_IO");
    fs.disarm();
    let kept = stage_files(store.dir());
    assert!(spilled.iter().all(|n| kept.contains(n)), "a failed save lost stage files: {spilled:?} → {kept:?}");
    store.save().unwrap();
    let reopened = Store::open(options(tmp.path()), Arc::new(RealFs)).unwrap();
    check_reads(&reopened, &models, "after the retry");
    assert_eq!(stage_names(store.dir()), Vec::<String>::new());
}

#[test]
fn a_cache_directory_deleted_during_the_build_loses_only_the_staged_values() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(options(tmp.path()), Arc::new(RealFs)).unwrap();
    store.set("a", b"committed", b"old").unwrap();
    store.save().unwrap();
    let mut models = BTreeMap::new();
    fill_chunks(&store, &mut models, "a", 3);
    let spilled = wait_for_stage_files(store.dir(), 3).len();
    // What `rm -rf .cache` during a watch build does (retried: background
    // encoders may be writing stage files meanwhile).
    let mut removed = false;
    for _ in 0..100 {
        removed = std::fs::remove_dir_all(tmp.path()).is_ok();
        if removed {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(removed, "could not delete the cache directory");
    let lost = store.get("a", b"k0");
    assert!(matches!(&lost, Err(e) if e.code() == "PACKCACHE_IO") || lost.as_ref().is_ok_and(|v| v.is_some()));
    store.set("a", b"committed", b"new").unwrap();
    store.set("b", b"after", b"kept").unwrap();
    store.save().unwrap();
    // Values whose stage files went are gone (misses, never other bytes);
    // everything else the build set since is saved, and saves go on working.
    let reopened = Store::open(options(tmp.path()), Arc::new(RealFs)).unwrap();
    let loaded: Model = reopened.load("a").unwrap().into_pairs().into_iter().collect();
    assert_eq!(loaded.get(&b"committed"[..]).map(|v| &v[..]), Some(&b"new"[..]));
    for (k, v) in &loaded {
        if k != b"committed" {
            assert_eq!(Some(v), models["a"].get(k), "a value that was not lost reads back as set");
        }
    }
    assert!(loaded.len() <= 200 + 1 - spilled, "{} keys survived {spilled} deleted stage files", loaded.len());
    assert_eq!(reopened.get("b", b"after").unwrap().as_deref(), Some(&b"kept"[..]));
    store.set("b", b"later", b"ok").unwrap();
    store.save().unwrap();
    assert_eq!(stage_names(store.dir()), Vec::<String>::new());
}
