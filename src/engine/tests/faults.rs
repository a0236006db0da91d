//! Fault injection: each file-system operation of a save fails in turn, for
//! saves that add, overwrite, remove, merge packs and expire versions. After
//! every failure the cache must hold exactly the previous or the new
//! generation, and the next successful save must leave no orphaned file.

use std::collections::{BTreeMap, HashSet};
use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::super::*;
use super::{apply, noise, Model};
use crate::engine::fs::fault::{FaultFs, FaultMode};
use crate::engine::fs::RealFs;

type Models = BTreeMap<String, Model>;

const SCOPES: [&str; 3] = ["alpha", "beta", "gamma"];

fn options(root: &Path) -> Options {
    let mut o = Options::new(root, "v1");
    o.pack_size = 8 * 1024;
    o.expire = Some(Duration::from_secs(3600));
    o
}

fn snapshot(root: &Path) -> Models {
    let store = Store::open(options(root), Arc::new(RealFs)).unwrap();
    SCOPES.iter().map(|s| (s.to_string(), store.load(s).unwrap().into_pairs().into_iter().collect())).collect()
}

fn empty_models() -> Models {
    SCOPES.iter().map(|s| (s.to_string(), Model::new())).collect()
}

/// Builds the committed state the failing save starts from.
fn setup(root: &Path, models: &mut Models, small_saves: usize) {
    let store = Store::open(options(root), Arc::new(RealFs)).unwrap();
    for i in 0..120u64 {
        apply(&store, models, SCOPES[(i % 2) as usize], format!("key-{i}"), Some(noise(i, 200)));
    }
    store.save().unwrap();
    for round in 0..small_saves as u64 {
        apply(&store, models, "alpha", format!("small-{round}"), Some(noise(round + 500, 50)));
        store.save().unwrap();
    }
}

/// A version directory last used long ago, for the expiry scenario.
fn stale_version(root: &Path) {
    let old = Store::open(Options { version: "old".into(), ..options(root) }, Arc::new(RealFs)).unwrap();
    old.set("alpha", b"k", b"old").unwrap();
    old.save().unwrap();
    let past = SystemTime::now() - Duration::from_secs(86400);
    let manifest = old.dir().join(crate::engine::layout::MANIFEST_NAME);
    std::fs::File::options().write(true).open(manifest).unwrap().set_modified(past).unwrap();
}

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Add,
    Overwrite,
    Remove,
    MergeSmallPacks,
    Expire,
}

fn change(scenario: Scenario, store: &Store, models: &mut Models) {
    match scenario {
        Scenario::Add => {
            for i in 0..30u64 {
                apply(store, models, SCOPES[(i % 3) as usize], format!("new-{i}"), Some(noise(i + 1000, 300)));
            }
        }
        Scenario::Overwrite => {
            for i in (0..120u64).step_by(2) {
                apply(store, models, "alpha", format!("key-{i}"), Some(noise(i + 2000, 200)));
            }
        }
        Scenario::Remove => {
            for i in (1..120u64).step_by(3) {
                apply(store, models, SCOPES[(i % 2) as usize], format!("key-{i}"), None);
            }
        }
        Scenario::MergeSmallPacks | Scenario::Expire => {
            apply(store, models, "alpha", "small-last".into(), Some(noise(9, 50)));
        }
    }
}

fn assert_no_orphans(root: &Path) {
    let store = Store::open(options(root), Arc::new(RealFs)).unwrap();
    store.save().unwrap();
    let manifest = store.core().read_manifest().unwrap();
    let live: HashSet<String> = manifest.scopes.iter().flat_map(|s| &s.packs).map(|p| p.file_name()).collect();
    for entry in std::fs::read_dir(store.dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(!name.contains(".tmp-"), "temp file {name} survived a successful save");
        if name.ends_with(".pack") {
            assert!(live.contains(&name), "orphaned pack {name} survived a successful save");
        }
    }
}

/// Runs one failing save per operation index until a save completes
/// untouched; returns the number of faults injected.
fn sweep(scenario: Scenario, mode: FaultMode, kind: ErrorKind) -> u64 {
    let mut injected = 0;
    for n in 0.. {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let mut before = empty_models();
        setup(root, &mut before, if matches!(scenario, Scenario::MergeSmallPacks) { 7 } else { 0 });
        if matches!(scenario, Scenario::Expire) {
            stale_version(root);
        }
        let fs = FaultFs::healthy();
        let mut o = options(root);
        if matches!(scenario, Scenario::Expire) {
            o.expire = Some(Duration::from_secs(60));
        }
        let store = Store::open(o, fs.clone()).unwrap();
        let mut after = before.clone();
        change(scenario, &store, &mut after);
        fs.arm(n, mode, kind);
        let result = store.save();
        fs.disarm();
        injected += fs.fired();
        let state = snapshot(root);
        let ctx = format!("{scenario:?} {mode:?} {kind:?} fault at op {n}: {result:?}");
        match &result {
            Err(e) => {
                assert_eq!(e.code(), "PACKCACHE_IO", "{ctx}");
                assert!(state == before || state == after, "{ctx}: cache holds a mixed generation");
            }
            Ok(_) => assert!(state == after, "{ctx}: a save that succeeded lost data"),
        }
        // The failed save's updates were kept: the same instance saves them now.
        store.save().unwrap();
        assert_eq!(snapshot(root), after, "{ctx}: retry after the fault");
        assert_no_orphans(root);
        if result.is_ok() && fs.fired() == 0 {
            assert!(n > 5, "{ctx}: the sweep must reach past the first operations");
            break;
        }
    }
    injected
}

#[test]
fn every_failed_save_leaves_the_previous_or_the_new_generation() {
    let mut total = 0;
    for scenario in [Scenario::Add, Scenario::Overwrite, Scenario::Remove, Scenario::MergeSmallPacks, Scenario::Expire]
    {
        for kind in [ErrorKind::StorageFull, ErrorKind::PermissionDenied, ErrorKind::Other] {
            total += sweep(scenario, FaultMode::Persistent, kind);
        }
        total += sweep(scenario, FaultMode::Once, ErrorKind::Other);
    }
    eprintln!("fault injection: {total} faults injected");
    assert!(total > 100, "only {total} faults were injected");
}

#[test]
fn fsync_failures_are_reported_and_leave_a_whole_generation() {
    let mut total = 0;
    for scenario in [Scenario::Add, Scenario::Overwrite] {
        total += sweep_with_fsync(scenario);
    }
    assert!(total > 10, "only {total} faults were injected");
}

fn sweep_with_fsync(scenario: Scenario) -> u64 {
    let mut injected = 0;
    for n in 0.. {
        let tmp = tempfile::tempdir().unwrap();
        let mut before = empty_models();
        setup(tmp.path(), &mut before, 0);
        let fs = FaultFs::healthy();
        let store = Store::open(Options { fsync: true, ..options(tmp.path()) }, fs.clone()).unwrap();
        let mut after = before.clone();
        change(scenario, &store, &mut after);
        fs.arm(n, FaultMode::Once, ErrorKind::Other);
        let result = store.save();
        injected += fs.fired();
        let state = snapshot(tmp.path());
        match &result {
            Err(e) => assert!(e.code() == "PACKCACHE_IO" && (state == before || state == after), "op {n}"),
            Ok(_) => assert!(state == after, "op {n}"),
        }
        if result.is_ok() && fs.fired() == 0 {
            break;
        }
    }
    injected
}
