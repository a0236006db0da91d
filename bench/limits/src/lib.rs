//! What both binaries read: a packcache version directory's packs, opened
//! and decoded back to their raw values.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use packcache::engine::pack::reader::{PackView, Verify};

/// The pack files of a version directory, sorted.
pub fn packs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .collect();
    out.sort();
    out
}

/// A pack opened from its file (index checked, blocks not).
pub fn open(path: &Path) -> PackView {
    let bytes = std::fs::read(path).unwrap();
    let id: [u8; 32] = bytes[bytes.len() - 32..].try_into().unwrap();
    PackView::open(Arc::new(bytes), &id, Verify::IndexOnly).unwrap()
}

/// A pack's raw values, back to back.
pub fn decode(path: &Path) -> Vec<u8> {
    let view = open(path);
    let mut out = vec![0u8; view.body_raw_len()];
    view.decode_into(&mut out).unwrap();
    out
}

/// The median of some timings.
pub fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    runs[runs.len() / 2]
}
