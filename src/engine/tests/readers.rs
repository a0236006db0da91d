//! Readers racing other stores' saves: a pack the reader's manifest names
//! may be deleted by the garbage collection of a save committed after the
//! reader read that manifest. Such a reader starts over on the newer
//! manifest; it never reports the pack missing (which would also make its
//! next save reset the scope).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::super::*;
use super::Model;
use crate::engine::fs::fault::FaultFs;
use crate::engine::fs::RealFs;

const KEYS: u64 = 12;

fn options(root: &Path) -> Options {
    let mut o = Options::new(root, "v1");
    o.pack_size = 64 * 1024;
    o
}

fn value(generation: usize, key: u64) -> Vec<u8> {
    format!("generation {generation} key {key} ").repeat(800).into_bytes()
}

/// Overwrites every key of scope `s`, so the save drops (and GC deletes)
/// every pack the previous generation had.
fn rewrite(store: &Store, generation: usize) {
    for k in 0..KEYS {
        store.set("s", format!("k{k}").as_bytes(), &value(generation, k)).unwrap();
    }
    store.save().unwrap();
}

/// A reader whose every pack mapping, `races` times, is preceded by
/// another store's save that deletes all packs of the scope.
fn racing_reader(root: &Path, races: usize) -> (Store, Arc<AtomicUsize>) {
    let writer = Store::open(options(root), Arc::new(RealFs)).unwrap();
    rewrite(&writer, 0);
    let fs = FaultFs::healthy();
    let lost = Arc::new(AtomicUsize::new(0));
    let counter = lost.clone();
    fs.before_map(move |path| {
        let is_pack = path.extension().is_some_and(|e| e == "pack");
        if is_pack && counter.load(Ordering::SeqCst) < races {
            let generation = counter.fetch_add(1, Ordering::SeqCst) + 1;
            rewrite(&writer, generation);
        }
    });
    (Store::open(options(root), fs).unwrap(), lost)
}

#[test]
fn a_load_that_loses_many_races_to_gc_starts_over_and_returns_the_newest_generation() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, lost) = racing_reader(dir.path(), 25);
    let loaded: Model = reader.load("s").unwrap().into_pairs().into_iter().collect();
    assert_eq!(lost.load(Ordering::SeqCst), 25);
    let expected: Model = (0..KEYS).map(|k| (format!("k{k}").into_bytes(), value(25, k))).collect();
    assert_eq!(loaded, expected);
    assert!(reader.core().corrupt_packs.lock().unwrap().is_empty(), "no pack was marked for reset");
}

#[test]
fn a_get_that_loses_many_races_to_gc_starts_over_and_returns_the_newest_value() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, lost) = racing_reader(dir.path(), 25);
    assert_eq!(reader.get("s", b"k3").unwrap(), Some(value(25, 3)));
    assert_eq!(lost.load(Ordering::SeqCst), 25);
    assert!(reader.core().corrupt_packs.lock().unwrap().is_empty(), "no pack was marked for reset");
}

#[test]
fn a_pack_missing_from_an_unchanged_manifest_is_still_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Store::open(options(dir.path()), Arc::new(RealFs)).unwrap();
    rewrite(&writer, 0);
    let vdir = writer.dir().to_owned();
    for entry in std::fs::read_dir(&vdir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "pack") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let reader = Store::open(options(dir.path()), Arc::new(RealFs)).unwrap();
    let err = reader.load("s").err().expect("a missing pack fails the load");
    assert_eq!(err.code(), "PACKCACHE_CORRUPT", "{err}");
    assert_eq!(reader.get("s", b"k1").unwrap_err().code(), "PACKCACHE_CORRUPT");
}
