//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and by `cargo
//! test`, which replays the committed corpus seeds. Each panics only when an
//! invariant is broken (wrong bytes, a crash-worthy bug), never on bad input.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Options, Store};
use crate::engine::fs::sim::SimFs;
use crate::engine::manifest::Manifest;
use crate::engine::pack::format::{Header, TRAILER_LEN};
use crate::engine::pack::reader::{PackView, Verify};
use crate::engine::pack::writer::{encode_pack, Compression};

/// Opens `data` as a pack twice: as given, and with its index hash (the id)
/// recomputed and repeated in the trailer so that the structural checks
/// behind them are reached. (Block hashes are left as they are: a block that
/// fails its hash is never decoded, except in `Verify::IndexOnly`.)
pub fn open_pack(data: &[u8]) {
    let as_given: [u8; 32] =
        data.get(data.len().saturating_sub(32)..).and_then(|t| t.try_into().ok()).unwrap_or([0; 32]);
    exercise_pack(data.to_vec(), as_given);
    if data.len() < TRAILER_LEN {
        return;
    }
    let mut fixed = data.to_vec();
    let Ok(h) = Header::read(&fixed) else { return };
    if h.check_bounds(fixed.len()).is_err() {
        return;
    }
    let id = Header::compute_index_hash(&fixed, h.body_off());
    fixed[64..96].copy_from_slice(&id);
    let n = fixed.len() - TRAILER_LEN;
    fixed[n..].copy_from_slice(&id);
    exercise_pack(fixed, id);
}

fn exercise_pack(bytes: Vec<u8>, id: [u8; 32]) {
    for verify in [Verify::Full, Verify::OnRead, Verify::IndexOnly] {
        let Ok(view) = PackView::open(Arc::new(bytes.clone()), &id, verify) else { continue };
        let mut total = 0;
        for i in 0..view.len() {
            let _ = view.key(i);
            total += view.value_range(i).len();
            if let Ok(v) = view.read_value(i) {
                assert_eq!(v.len(), view.value_range(i).len());
            }
        }
        if let Ok(body) = view.decode_body() {
            assert!(body.bytes().len() >= total);
        }
    }
}

/// Decodes `data` as a manifest, as given and with a recomputed checksum.
pub fn open_manifest(data: &[u8]) {
    let _ = Manifest::decode(data);
    if data.len() >= 64 {
        let mut fixed = data.to_vec();
        let n = fixed.len() - 32;
        let sum = *blake3::hash(&fixed[..n]).as_bytes();
        fixed[n..].copy_from_slice(&sum);
        if let Ok(m) = Manifest::decode(&fixed) {
            let again = Manifest::decode(&m.encode().unwrap()).unwrap();
            assert_eq!(again, m, "manifest re-encoding changed it");
        }
    }
}

/// Items parsed from bytes: [klen][key][vlen_lo][vlen_hi][value]…, keys unique.
fn items_from(data: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut items = BTreeMap::new();
    let mut rest = data;
    while let Some((&klen, tail)) = rest.split_first() {
        let klen = (klen as usize % 40).min(tail.len());
        let (key, tail) = tail.split_at(klen);
        let vlen = match tail {
            [a, b, ..] => (u16::from_le_bytes([*a, *b]) as usize).min(tail.len() - 2),
            _ => 0,
        };
        let tail = tail.get(2..).unwrap_or_default();
        let (value, tail) = tail.split_at(vlen);
        items.insert(key.to_vec(), value.repeat(1 + klen % 3));
        rest = tail;
    }
    items
}

/// Random items written into a pack read back identically, at any level.
pub fn round_trip(data: &[u8]) {
    let items = items_from(data);
    if items.is_empty() {
        return;
    }
    let list: Vec<(&[u8], &[u8])> = items.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    let compression = match data.first().map(|b| b % 3) {
        Some(0) => Compression::None,
        Some(1) => Compression::Lz4,
        _ => Compression::Zstd(1),
    };
    let pack = encode_pack("fuzz", 1, &list, compression).unwrap();
    let view = PackView::open(Arc::new(pack.to_bytes()), &pack.id, Verify::Full).unwrap();
    let body = view.decode_body().unwrap();
    for (i, (k, v)) in list.iter().enumerate() {
        assert_eq!(view.key(i), *k);
        assert_eq!(&body.bytes()[view.value_range(i)], *v);
        assert_eq!(view.read_value(view.find(k).unwrap()).unwrap(), *v);
    }
}

type Model = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Interprets bytes as operations on a store over an in-memory file system
/// and checks every read against a model of committed and unsaved state. A
/// reopen also picks the compression, so packs written with one are read,
/// and compacted, by a store using the other.
pub fn operations(data: &[u8]) {
    const SCOPES: [&str; 3] = ["a", "b", "c"];
    let sim = SimFs::new();
    let mut opts = Options::new("/fuzz", "v");
    opts.pack_size = 256;
    let open = |compression| Store::open(Options { compression, ..opts.clone() }, sim.clone()).unwrap();
    let mut store = open(Compression::Zstd(1));
    let (mut committed, mut view) = (Model::new(), Model::new());
    for chunk in data.chunks(3) {
        let [op, a, b] = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let scope = SCOPES[a as usize % 3];
        let key = vec![b % 16; (b % 5) as usize];
        match op % 8 {
            0..=2 => {
                let value = vec![a; b as usize * (op as usize % 7)];
                store.set(scope, &key, &value).unwrap();
                view.entry(scope.into()).or_default().insert(key, value);
            }
            3 => {
                store.remove(scope, &key).unwrap();
                view.entry(scope.into()).or_default().remove(&key);
            }
            4 => {
                store.save().unwrap();
                committed = view.clone();
            }
            5 => {
                store = open([Compression::Zstd(1), Compression::None, Compression::Lz4][b as usize % 3]);
                view = committed.clone();
            }
            6 => {
                let target = (b % 4 != 0).then_some(scope);
                store.reset(target).unwrap();
                for m in [&mut committed, &mut view] {
                    match target {
                        Some(s) => drop(m.remove(s)),
                        None => m.clear(),
                    }
                }
            }
            _ => {
                let got: BTreeMap<Vec<u8>, Vec<u8>> = store.load(scope).unwrap().into_pairs().into_iter().collect();
                let want = view.get(scope).cloned().unwrap_or_default();
                assert_eq!(got, want, "load({scope}) differs from the model");
                let expect = want.get(&key).cloned();
                assert_eq!(store.get(scope, &key).unwrap(), expect, "get differs from the model");
            }
        }
    }
    let reopened = open(Compression::Zstd(1));
    for scope in SCOPES {
        let got: BTreeMap<Vec<u8>, Vec<u8>> = reopened.load(scope).unwrap().into_pairs().into_iter().collect();
        assert_eq!(got, committed.get(scope).cloned().unwrap_or_default());
    }
}
