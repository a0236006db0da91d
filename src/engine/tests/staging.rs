//! Sets staged into chunks and encoded in the background: whatever was
//! encoded when, every read sees the latest value and a save stores each key
//! once live.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::super::fs::RealFs;
use super::super::reader::Verify;
use super::super::*;
use super::{apply, noise, Model};

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
    let manifest = manifest::read(&*store.fs, store.dir()).unwrap().unwrap();
    for scope in &manifest.scopes {
        let mut live = HashSet::new();
        for meta in &scope.packs {
            let view = store.open_pack(meta, Verify::Full).unwrap();
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
