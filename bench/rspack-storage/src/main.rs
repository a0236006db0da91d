//! rspack's cache storage (`rspack_storage`, as `@rspack/core` configures it:
//! 500 KiB packs, the native file system) driven on the benchmark's workload,
//! one operation per process, timed inside this process. Prints one JSON line.
//!
//! ```text
//! rspack-peer save <dir> <workload.bin>
//! rspack-peer load <dir> <scope>...
//! rspack-peer inc  <dir> <change.bin>
//! ```
//!
//! `workload.bin` is `bench/workload.mjs`'s cache file; `change.bin` is written
//! by `bench/systems.mjs` (sets, then removes; little-endian u32 lengths).

use std::{sync::Arc, time::Instant};

use rspack_fs::NativeFileSystem;
use rspack_storage::{CacheDirectory, FileSystemOptions, FileSystemStorage, Storage};

/// Reads length-prefixed fields out of one of the bench's binary files.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn u32(&mut self) -> usize {
        let (head, rest) = self.0.split_at(4);
        self.0 = rest;
        u32::from_le_bytes(head.try_into().unwrap()) as usize
    }
    fn bytes(&mut self) -> &'a [u8] {
        let n = self.u32();
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn name(&mut self) -> &'static str {
        // Scope names must be 'static for rspack's API; there are eight.
        Box::leak(String::from_utf8(self.bytes().to_vec()).unwrap().into_boxed_str())
    }
}

fn open(dir: &str) -> FileSystemStorage {
    FileSystemStorage::new(FileSystemOptions {
        directory: dir.into(),
        cache_directory: CacheDirectory::new("0123456789abcdef"),
        max_pack_size: 500 * 1024,
        expire: 7 * 24 * 3600,
        fs: Arc::new(NativeFileSystem::new(false)),
    })
}

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

async fn save(dir: &str, file: &str) -> f64 {
    let data = std::fs::read(file).unwrap();
    let mut f = Fields(&data);
    let scopes: Vec<(&'static str, Vec<(&[u8], &[u8])>)> = (0..f.u32())
        .map(|_| {
            let name = f.name();
            let items = (0..f.u32()).map(|_| (f.bytes(), f.bytes())).collect();
            (name, items)
        })
        .collect();
    let t0 = Instant::now();
    let mut storage = open(dir);
    for (name, items) in &scopes {
        for (k, v) in items {
            storage.set(name, k.to_vec(), v.to_vec());
        }
    }
    storage.save();
    storage.flush().await;
    t0.elapsed().as_secs_f64() * 1e3
}

/// Bytes of the files under `dir` modified at or after `since`: what a save wrote.
fn written_since(dir: &std::path::Path, since: std::time::SystemTime) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => written_since(&e.path(), since),
            Ok(m) if m.modified().is_ok_and(|t| t >= since) => m.len(),
            _ => 0,
        })
        .sum()
}

async fn inc(dir: &str, file: &str) -> String {
    let data = std::fs::read(file).unwrap();
    let mut f = Fields(&data);
    let sets: Vec<_> = (0..f.u32()).map(|_| (f.name(), f.bytes(), f.bytes())).collect();
    let removes: Vec<_> = (0..f.u32()).map(|_| (f.name(), f.bytes())).collect();
    let since = std::time::SystemTime::now();
    let t0 = Instant::now();
    let mut storage = open(dir);
    for (name, k, v) in sets {
        storage.set(name, k.to_vec(), v.to_vec());
    }
    for (name, k) in removes {
        storage.remove(name, k);
    }
    storage.save();
    storage.flush().await;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    format!(r#"{{"ms":{ms},"written":{}}}"#, written_since(dir.as_ref(), since))
}

/// Loads every scope concurrently (as rspack's compiler does) and touches each
/// pair once, the way `bench/driver.mjs` touches the JS systems' pairs.
async fn load(dir: &str, names: &[String]) -> String {
    let t0 = Instant::now();
    let storage = Arc::new(open(dir));
    let tasks: Vec<_> = names
        .iter()
        .map(|n| {
            let storage = storage.clone();
            let name: &'static str = Box::leak(n.clone().into_boxed_str());
            tokio::spawn(async move { storage.load(name).await })
        })
        .collect();
    let (mut items, mut bytes, mut check) = (0usize, 0usize, 0u8);
    for task in tasks {
        for (k, v) in task.await.unwrap().unwrap() {
            items += 1;
            bytes += k.len() + v.len();
            check ^= v.first().copied().unwrap_or(0);
        }
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    format!(
        r#"{{"ms":{ms},"items":{items},"bytes":{bytes},"check":{check},"rss":{}}}"#,
        peak_rss()
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (op, dir) = (args[0].as_str(), args[1].as_str());
    let line = match op {
        "save" => format!(r#"{{"ms":{}}}"#, save(dir, &args[2]).await),
        "inc" => inc(dir, &args[2]).await,
        "load" => load(dir, &args[2..]).await,
        _ => panic!("unknown op {op}"),
    };
    println!("{line}");
}
