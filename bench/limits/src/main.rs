//! `limits <packcache version dir>`: times, on all cores,
//! 1. read every pack file and zstd-decode every block (no checksum, no JS),
//! 2. encode the same raw bytes in 64 KiB blocks with the packs' codec
//!    (zstd at level 1, or LZ4).
//! Prints one JSON line (milliseconds, medians of 5 runs).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use packcache::engine::pack::format::BLOCK_SIZE;
use packcache::engine::pack::format::Codec;
use packcache_limits::{decode, median, open, packs};

fn parallel<T: Sync>(items: &[T], f: impl Fn(&T) -> usize + Sync) -> usize {
    let next = AtomicUsize::new(0);
    let total = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                total.fetch_add(f(item), Ordering::Relaxed);
            });
        }
    });
    total.into_inner()
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: limits <packcache version dir>"));
    let files = packs(&dir);
    let mut decode_runs = Vec::new();
    let mut raw_total = 0;
    for _ in 0..5 {
        let t = Instant::now();
        raw_total = parallel(&files, |p| decode(p).len());
        decode_runs.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let bodies: Vec<Vec<u8>> = files.iter().map(|p| decode(p)).collect();
    let blocks: Vec<&[u8]> = bodies.iter().flat_map(|b| b.chunks(BLOCK_SIZE)).collect();
    let codec = files.first().map_or(Codec::Zstd, |p| open(p).codec());
    let encode = |b: &&[u8]| match codec {
        Codec::Zstd => zstd::bulk::compress(b, 1).unwrap().len(),
        Codec::Lz4 => lz4_flex::block::compress(b).len(),
    };
    let mut encode_runs = Vec::new();
    let mut encoded = 0;
    for _ in 0..5 {
        let t = Instant::now();
        encoded = parallel(&blocks, encode);
        encode_runs.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let root = dir.parent().unwrap();
    let store = packcache::engine::Store::open(packcache::engine::Options::new(root, "bench"), Arc::new(packcache::engine::fs::RealFs)).unwrap();
    let names: Vec<String> = store.scopes().unwrap();
    let mut engine_runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let loaded = store.load_many(&names).unwrap();
        let n: usize = loaded.iter().map(|s| s.as_ref().unwrap().len()).sum();
        assert!(n > 0);
        engine_runs.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // As a real load must: every decoded byte stays in memory until the end.
    let mut keep_runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let kept = std::sync::Mutex::new(Vec::new());
        parallel(&files, |p| {
            let out = decode(p);
            let n = out.len();
            kept.lock().unwrap().push(out);
            n
        });
        keep_runs.push(t.elapsed().as_secs_f64() * 1e3);
    }
    eprintln!("engine load_many (verify + decode, no JS): {:.1} ms", median(engine_runs));
    println!(
        "{{\"codec\":\"{}\",\"packs\":{},\"rawBytes\":{raw_total},\"readDecodeMs\":{:.1},\"readDecodeKeepMs\":{:.1},\"encodeMs\":{:.1},\"encodedBytes\":{encoded}}}",
        if codec == Codec::Lz4 { "lz4" } else { "zstd" },
        files.len(),
        median(decode_runs),
        median(keep_runs),
        median(encode_runs)
    );
}
