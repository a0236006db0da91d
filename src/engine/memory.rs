//! Large buffers, faulted in with one call. A fresh buffer of gigabytes
//! written page by page takes a page fault per 4 KiB (on the benchmark VM a
//! 2 GiB copy into fresh memory takes ≈ 2.4 s, nearly all of it faults);
//! asking the kernel to populate the pages up front is one call, as loads
//! already do for their region.

/// Below this, a buffer is left to fault in as it is written.
const PREFAULT_MIN: usize = 1 << 20;

/// A zeroed buffer of `len` bytes, its pages populated up front when large.
pub fn zeroed(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    if len >= PREFAULT_MIN {
        populate(v.as_mut_ptr(), len);
    }
    v
}

/// `v.reserve(additional)`, with the room for those bytes populated up
/// front when large (before a large `extend_from_slice`).
pub fn reserve(v: &mut Vec<u8>, additional: usize) {
    v.reserve(additional);
    if additional >= PREFAULT_MIN {
        let spare = v.spare_capacity_mut();
        populate(spare.as_mut_ptr().cast(), additional.min(spare.len()));
    }
}

/// A copy of `bytes`, into a buffer made as `zeroed` makes one.
pub fn copy_of(bytes: &[u8]) -> Vec<u8> {
    if bytes.len() < PREFAULT_MIN {
        return bytes.to_vec();
    }
    let mut v = zeroed(bytes.len());
    v.copy_from_slice(bytes);
    v
}

/// Faults in the whole pages of `len` bytes at `ptr`: memory its caller
/// holds exclusively (an initialized buffer or a Vec's spare capacity).
fn populate(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = (ptr as usize).next_multiple_of(PAGE);
        let end = (ptr as usize + len) / PAGE * PAGE;
        if end <= start {
            return;
        }
        // SAFETY: `start..end` lies inside the caller's memory, held
        // exclusively. Both calls are hints that change no byte: huge pages
        // where the kernel allows them, then every page faulted in (zero or
        // unwritten, as it was). Failure (an older kernel) leaves the faults
        // to the writes.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_POPULATE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}
