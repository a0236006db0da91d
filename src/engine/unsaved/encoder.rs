//! The background encoders: sealed chunks are encoded into packs (and
//! spilled) on threads of their own while the build keeps setting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use super::stage::Chunk;

/// Sealed chunks waiting for an encoder, at most: past that, the thread that
/// sealed one encodes it itself. Bounds the raw bytes held in memory, and
/// keeps reused buffers coming back instead of allocating fresh ones.
const MAX_QUEUED: usize = 2;

/// Queues a sealed chunk for the background encoders: one thread fewer than
/// the cores (at least one), so sets on the JS thread keep a core.
pub fn encode_later(chunk: Arc<Chunk>) {
    static QUEUE: OnceLock<Option<Mutex<Sender<Arc<Chunk>>>>> = OnceLock::new();
    static QUEUED: AtomicUsize = AtomicUsize::new(0);
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = channel::<Arc<Chunk>>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(1, |p| p.get()).saturating_sub(1).max(1);
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("packcache-stage-{i}")).spawn(move || loop {
                let next = rx.lock().unwrap().recv();
                let Ok(chunk) = next else { break };
                QUEUED.fetch_sub(1, Ordering::AcqRel);
                chunk.encode_ahead();
            });
            if spawned.is_err() {
                return None; // no threads: chunks are encoded by the save instead
            }
        }
        Some(Mutex::new(tx))
    });
    let Some(tx) = queue else { return };
    if QUEUED.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED {
        QUEUED.fetch_sub(1, Ordering::AcqRel);
        chunk.encode_ahead();
        return;
    }
    if tx.lock().unwrap().send(chunk).is_err() {
        QUEUED.fetch_sub(1, Ordering::AcqRel);
    }
}
