//! Chunk buffers, reused: a build's sets copy into memory that is already
//! mapped instead of allocating (and faulting in) fresh memory per chunk.

use std::sync::{Mutex, OnceLock};

/// Buffers kept for reuse, and the largest capacity worth keeping.
const POOL_BUFFERS: usize = 8;
const POOL_MAX_CAPACITY: usize = 16 << 20;
/// Capacity of a fresh chunk buffer; it grows as needed.
const FRESH_CAPACITY: usize = 64 << 10;

fn pool() -> &'static Mutex<Vec<Vec<u8>>> {
    static POOL: OnceLock<Mutex<Vec<Vec<u8>>>> = OnceLock::new();
    POOL.get_or_init(|| Mutex::new(Vec::new()))
}

pub fn take_buffer() -> Vec<u8> {
    pool().lock().unwrap().pop().unwrap_or_else(|| Vec::with_capacity(FRESH_CAPACITY))
}

pub fn recycle(mut data: Vec<u8>) {
    if data.capacity() == 0 || data.capacity() > POOL_MAX_CAPACITY {
        return;
    }
    data.clear();
    let mut pool = pool().lock().unwrap();
    if pool.len() < POOL_BUFFERS {
        pool.push(data);
    }
}
