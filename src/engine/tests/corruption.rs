//! Corruption sweep: every byte of every pack and of the manifest flipped, a
//! sample of single bits flipped, every truncation, garbage appended, the tail
//! zeroed. Each variant must load correct data or report `Corrupted` for the
//! affected scope — never wrong bytes, never a panic.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::super::*;
use super::{noise, Model};
use crate::engine::fs::sim::SimFs;

const SCOPES: [&str; 2] = ["left", "right"];

fn options() -> Options {
    let mut o = Options::new("/sim/cache", "v1");
    o.pack_size = 512;
    o
}

fn build() -> (Arc<SimFs>, BTreeMap<String, Model>) {
    let sim = SimFs::new();
    let store = Store::open(options(), sim.clone()).unwrap();
    let mut models = BTreeMap::new();
    for (s, scope) in SCOPES.iter().enumerate() {
        let model: &mut Model = models.entry(scope.to_string()).or_default();
        for i in 0..6u64 {
            let value = if i == 0 { Vec::new() } else { noise(i + s as u64 * 10, 60 + i as usize * 20) };
            store.set(scope, format!("k{i}").as_bytes(), &value).unwrap();
            model.insert(format!("k{i}").into_bytes(), value);
        }
    }
    store.save().unwrap();
    (sim, models)
}

/// Loads and gets everything (one key at a time and all at once) from a
/// damaged copy; panics on wrong bytes.
fn check(sim: Arc<SimFs>, models: &BTreeMap<String, Model>, ctx: &str) -> bool {
    let store = Store::open(options(), sim).unwrap();
    let mut corrupt = false;
    for scope in SCOPES {
        match store.load(scope) {
            Ok(l) => {
                let got: Model = l.into_pairs().into_iter().collect();
                assert_eq!(&got, &models[scope], "{ctx}: wrong data loaded for {scope}");
            }
            Err(Error::Corrupted { .. }) => corrupt = true,
            Err(e) => panic!("{ctx}: {scope}: expected Corrupted, got {e}"),
        }
        for (key, value) in &models[scope] {
            match store.get(scope, key) {
                Ok(got) => assert_eq!(got.as_ref(), Some(value), "{ctx}: wrong value from get"),
                Err(Error::Corrupted { .. }) => corrupt = true,
                Err(e) => panic!("{ctx}: get: expected Corrupted, got {e}"),
            }
        }
        let keys: Vec<Vec<u8>> = models[scope].keys().cloned().collect();
        match store.get_many(scope, &keys) {
            Ok(values) => {
                for (key, got) in keys.iter().zip(values) {
                    assert_eq!(got.as_ref(), models[scope].get(key), "{ctx}: wrong value from get_many");
                }
            }
            Err(Error::Corrupted { .. }) => corrupt = true,
            Err(e) => panic!("{ctx}: get_many: expected Corrupted, got {e}"),
        }
    }
    corrupt
}

fn variants(original: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for pos in 0..original.len() {
        let mut v = original.to_vec();
        v[pos] ^= 0xff;
        out.push((format!("byte {pos} flipped"), v));
        let mut v = original.to_vec();
        v[pos] ^= 1 << (pos % 8);
        out.push((format!("bit {} of byte {pos} flipped", pos % 8), v));
    }
    for len in 0..original.len() {
        out.push((format!("truncated to {len}"), original[..len].to_vec()));
    }
    let mut v = original.to_vec();
    v.extend_from_slice(b"garbage appended by something else");
    out.push(("garbage appended".into(), v));
    for tail in [1, 32, 100, original.len() / 2] {
        let mut v = original.to_vec();
        let n = v.len();
        v[n.saturating_sub(tail)..].fill(0);
        out.push((format!("last {tail} bytes zeroed"), v));
    }
    out
}

#[test]
fn every_damaged_file_variant_loads_correct_data_or_reports_corruption() {
    let (sim, models) = build();
    let files: Vec<_> = sim.files().into_iter().filter(|p| !p.ends_with("LOCK")).collect();
    assert!(files.len() >= 4, "a manifest and several packs: {files:?}");
    let (mut checked, mut detected) = (0, 0);
    for file in &files {
        let original = sim.contents(file).unwrap();
        for (what, bytes) in variants(&original) {
            let copy = sim.duplicate();
            copy.overwrite(file, bytes);
            let name = file.file_name().unwrap().to_string_lossy();
            detected += u64::from(check(copy, &models, &format!("{name}: {what}")));
            checked += 1;
        }
    }
    eprintln!("corruption sweep: {checked} variants of {} files, {detected} reported corrupt", files.len());
    assert!(!check(sim, &models, "undamaged"), "the undamaged cache loads cleanly");
}

#[test]
fn a_pack_from_a_newer_format_version_is_reported_not_misread() {
    let (sim, models) = build();
    let pack = sim.files().into_iter().find(|p| p.extension().is_some_and(|e| e == "pack")).unwrap();
    let mut bytes = sim.contents(&pack).unwrap();
    bytes[8] = 4; // format version
    sim.overwrite(&pack, bytes);
    assert!(check(sim, &models, "newer format"));
}
