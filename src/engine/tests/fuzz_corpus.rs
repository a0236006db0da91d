//! Replays the committed fuzz corpus seeds (`fuzz/corpus/<target>/`) through
//! the same entry points the cargo-fuzz targets call, plus a seeded random
//! run of the operations model, so `cargo test` covers them without cargo-fuzz.

use std::path::PathBuf;

use super::super::*;
use crate::engine::fs::sim::SimFs;
use crate::engine::fuzzing;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    out
}

#[test]
fn fuzz_corpus_seeds_replay_without_failures() {
    let targets: [(&str, fn(&[u8])); 4] = [
        ("open_pack", fuzzing::open_pack),
        ("open_manifest", fuzzing::open_manifest),
        ("round_trip", fuzzing::round_trip),
        ("operations", fuzzing::operations),
    ];
    for (name, run) in targets {
        let seeds = corpus(name);
        assert!(!seeds.is_empty(), "no seeds for {name}");
        for seed in seeds {
            run(&seed);
        }
    }
    // Seeds of the current format, so the fuzzers start past the version check.
    let current = corpus("open_pack")
        .into_iter()
        .filter(|seed| seed.len() >= 32)
        .filter(|seed| {
            let id: [u8; 32] = seed[seed.len() - 32..].try_into().unwrap();
            let view = pack::reader::PackView::open(std::sync::Arc::new(seed.clone()), &id, pack::reader::Verify::Full);
            view.is_ok_and(|v| v.len() > 0)
        })
        .count();
    assert!(current >= 2, "only {current} open_pack seeds are packs of the current format: run write_fuzz_seeds");
}

/// 300 sequences by default; `PACKCACHE_RANDOM_RUNS=n` for a longer soak.
#[test]
fn random_operation_sequences_match_the_model() {
    let runs = std::env::var("PACKCACHE_RANDOM_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(300usize);
    let mut x = 0x243F6A8885A308D3u64;
    for len in 0..runs {
        let data: Vec<u8> = (0..len % 150)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fuzzing::operations(&data);
    }
}

/// Writes the seed files; run once by hand: `cargo test write_fuzz_seeds -- --ignored`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for (codec, compression) in [("lz4", Compression::Lz4), ("zstd", Compression::Zstd(1))] {
        let sim = SimFs::new();
        let mut o = Options::new("/seed", "v");
        o.pack_size = 300;
        o.compression = compression;
        let store = Store::open(o, sim.clone()).unwrap();
        for i in 0..12u8 {
            store.set("s", &[i; 3], &vec![i; i as usize * 20]).unwrap();
        }
        store.save().unwrap();
        store.remove("s", &[1; 3]).unwrap();
        store.save().unwrap();
        let mut packs = 0;
        for path in sim.files() {
            let bytes = sim.contents(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".pack") {
                packs += 1;
                write("open_pack", &format!("seed-pack-{codec}-{packs}"), &bytes);
            } else if name == "MANIFEST" {
                write("open_manifest", &format!("seed-manifest-{codec}"), &bytes);
            }
        }
    }
    write("open_pack", "seed-empty", b"");
    write("open_manifest", "seed-empty", b"");
    write("round_trip", "seed-small", &[3, b'a', b'b', b'c', 5, 0, b'h', b'e', b'l', b'l', b'o', 0, 2, 0, 0, 0]);
    write("round_trip", "seed-big", &[7, 1, 2, 3, 4, 5, 6, 7, 0xff, 0x0f].repeat(30));
    write("operations", "seed-set-save-reopen", &[0, 1, 2, 1, 2, 3, 4, 0, 0, 7, 1, 2, 5, 0, 0, 7, 1, 2]);
    write("operations", "seed-reset", &[0, 0, 1, 4, 0, 0, 6, 0, 1, 7, 0, 1, 5, 0, 0, 7, 0, 1, 6, 0, 0]);
    write("operations", "seed-compaction", &[1, 0, 200, 4, 0, 0].repeat(12));
}
