//! Simulated power loss at every operation of a save. With `fsync: true`
//! every crash image opens to the previous or the new generation; with
//! `fsync: false` to one of them or a `Corrupted` report — never wrong bytes.
//! Either way the next save repairs the cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::super::*;
use super::{apply, noise, Model};
use crate::engine::fs::sim::{CrashKind, SimFs};

type Models = BTreeMap<String, Model>;
const SCOPES: [&str; 3] = ["alpha", "beta", "gamma"];

fn options(fsync: bool) -> Options {
    let mut o = Options::new("/sim/cache", "v1");
    o.pack_size = 4096;
    o.fsync = fsync;
    o
}

/// Two committed generations (so the crashing save also deletes packs).
fn setup(store: &Store, models: &mut Models) {
    for i in 0..60u64 {
        apply(store, models, SCOPES[(i % 2) as usize], format!("k{i}"), Some(noise(i, 150)));
    }
    store.save().unwrap();
    for i in (0..60u64).step_by(4) {
        apply(store, models, "alpha", format!("k{i}"), Some(noise(i + 100, 150)));
    }
    store.save().unwrap();
}

fn change(store: &Store, models: &mut Models) {
    for i in (0..60u64).step_by(2) {
        apply(store, models, "alpha", format!("k{i}"), Some(noise(i + 200, 150)));
    }
    for i in (1..60u64).step_by(6) {
        apply(store, models, "beta", format!("k{i}"), None);
    }
    apply(store, models, "gamma", "new".into(), Some(noise(7, 5000)));
}

/// Opens a crash image and checks it; returns whether any scope was corrupt.
fn check_image(image: Arc<SimFs>, fsync: bool, before: &Models, after: &Models, ctx: &str) -> bool {
    let store = Store::open(options(fsync), image).unwrap();
    let names: Vec<String> = SCOPES.iter().map(|s| s.to_string()).collect();
    let results: Vec<Result<Model>> = match store.load_many(&names) {
        Ok(rs) => rs.into_iter().map(|r| r.map(|l| l.into_pairs().into_iter().collect())).collect(),
        Err(e) => names.iter().map(|_| Err(Error::corrupted(e.to_string()))).collect(),
    };
    let mut corrupt = false;
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, Error::Corrupted { .. }), "{ctx}: unexpected error {e}");
            corrupt = true;
        }
    }
    let matches = |gen: &Models| names.iter().zip(&results).all(|(s, r)| r.as_ref().map_or(true, |m| m == &gen[s]));
    assert!(matches(before) || matches(after), "{ctx}: a crash image holds wrong or mixed data");
    assert!(!(fsync && corrupt), "{ctx}: with fsync a crash image must not be corrupt");
    // The next save repairs whatever the crash left.
    store.set("alpha", b"after-crash", b"1").unwrap();
    store.save().unwrap();
    for s in SCOPES {
        let r = store.load(s);
        assert!(r.is_ok(), "{ctx}: scope {s} still fails after a save: {:?}", r.err());
    }
    corrupt
}

fn sweep(fsync: bool) -> (u64, u64) {
    let (mut images, mut corrupt) = (0, 0);
    for k in 0.. {
        let sim = SimFs::new();
        let store = Store::open(options(fsync), sim.clone()).unwrap();
        let mut before: Models = SCOPES.iter().map(|s| (s.to_string(), Model::new())).collect();
        setup(&store, &mut before);
        sim.sync_all();
        let mut after = before.clone();
        change(&store, &mut after);
        sim.crash_after(k);
        let completed = store.save().is_ok() && !sim.crashed();
        let mut kinds = vec![CrashKind::SyncedOnly];
        kinds.extend((1..=6).map(|s| CrashKind::RandomSubset(k * 31 + s)));
        kinds.extend((1..=3).map(|s| CrashKind::TornLastWrite(k * 17 + s)));
        for kind in kinds {
            let ctx = format!("fsync={fsync} crash after op {k}, {kind:?}");
            corrupt += u64::from(check_image(sim.crash_image(kind), fsync, &before, &after, &ctx));
            images += 1;
        }
        if completed {
            assert!(k > 10, "the sweep must cover a whole save");
            break;
        }
    }
    (images, corrupt)
}

#[test]
fn with_fsync_every_crash_image_opens_to_a_whole_generation() {
    let (images, corrupt) = sweep(true);
    eprintln!("power loss, fsync on: {images} crash images, {corrupt} corrupt");
    assert!(images > 100);
}

#[test]
fn without_fsync_crash_images_are_a_whole_generation_or_reported_corrupt() {
    let (images, corrupt) = sweep(false);
    eprintln!("power loss, fsync off: {images} crash images, {corrupt} reported corrupt");
    assert!(images > 100);
}

#[test]
fn spilled_chunks_with_fsync_survive_power_loss_at_every_operation_of_their_save() {
    let is_stage_file =
        |p: &std::path::PathBuf| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("stage-"));
    let mut spilled_saves = 0;
    for k in 0.. {
        let sim = SimFs::new();
        let store = Store::open(options(true), sim.clone()).unwrap();
        let before: Models = SCOPES.iter().map(|s| (s.to_string(), Model::new())).collect();
        let mut after = before.clone();
        for i in 0..90u64 {
            apply(&store, &mut after, SCOPES[(i % 3) as usize], format!("k{i}"), Some(noise(i + 300, 400)));
        }
        // Chunks of 4 KiB fill every ≈ 10 sets: wait for the background to stage some.
        for _ in 0..500 {
            if sim.files().iter().filter(|p| is_stage_file(p)).count() >= 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        spilled_saves += usize::from(sim.files().iter().any(is_stage_file));
        // Not synced: the stage files' data is durable only if the save makes it so.
        sim.crash_after(k);
        let completed = store.save().is_ok() && !sim.crashed();
        for kind in [CrashKind::SyncedOnly, CrashKind::RandomSubset(k + 1), CrashKind::TornLastWrite(k + 1)] {
            let ctx = format!("spilled, fsync, crash after op {k}, {kind:?}");
            check_image(sim.crash_image(kind), true, &before, &after, &ctx);
        }
        if completed {
            break;
        }
    }
    assert!(spilled_saves > 0, "no save found stage files to link");
}
