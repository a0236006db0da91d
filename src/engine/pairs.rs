//! What reads hand out: pairs whose keys and values are ranges of shared
//! buffers (a pack's mapping, a load's region of decoded packs, an owned
//! buffer), so nothing is copied per pair.

use std::ops::Range;
use std::sync::Arc;

use crate::engine::error::Error;
use crate::engine::fs::Blob;

/// One block of anonymous memory that all compressed packs of a load decode
/// into, each into its own slot. One allocation per load, not per pack: a
/// JS engine counts each external buffer toward its GC heuristics, and 90
/// buffers of 4 MiB trigger far more collections than one of 360 MiB.
///
/// Sound by construction: the region hands out no slice of itself. A slot
/// is written once, through [`Region::fill`], which refuses a range that
/// overlaps one claimed before, and only then becomes the [`Slot`] that
/// reads it; `Slot`'s fields are private, so safe code cannot read a slot
/// that is still being written, nor write one twice.
pub struct Region {
    map: memmap2::MmapMut,
    /// Start of the mapping, taken once: slots are written through raw
    /// pointers so no two workers ever hold overlapping references.
    ptr: *mut u8,
    len: usize,
    /// Ranges handed to `fill` so far: start -> end.
    claimed: std::sync::Mutex<std::collections::BTreeMap<usize, usize>>,
}

// SAFETY: workers write disjoint slots (`fill` claims each range once),
// each before the `Slot` that reads it exists; Rust code reads the region
// only through `Slot`s.
unsafe impl Sync for Region {}
// SAFETY: as for `Sync`; the mapping itself may be unmapped on any thread.
unsafe impl Send for Region {}

impl Region {
    pub(crate) fn new(len: usize) -> Option<Arc<Region>> {
        let mut map = memmap2::MmapOptions::new().len(len.max(1)).map_anon().ok()?;
        let ptr = map.as_mut_ptr();
        Some(Arc::new(Region { map, ptr, len, claimed: Default::default() }))
    }

    /// Start and length of the whole region, for handing its memory to
    /// another owner (a JS Buffer) without forming a reference to bytes that
    /// workers may still be writing.
    pub fn raw_parts(&self) -> (*const u8, usize) {
        (self.ptr, self.len)
    }

    /// Writes the slot `range` with `write` (it gets the slot, zeroed) and
    /// returns it as a readable [`Slot`]. Panics on a range outside the
    /// region or overlapping one claimed before.
    pub fn fill<E>(
        self: &Arc<Self>,
        range: Range<usize>,
        write: impl FnOnce(&mut [u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<Slot, E> {
        self.claim(&range);
        // Fault the slot in with one call rather than page by page.
        #[cfg(target_os = "linux")]
        let _ = self.map.advise_range(memmap2::Advice::PopulateWrite, range.start, range.len());
        // SAFETY: in the live mapping and claimed by this call alone
        // (`claim`), so no other reference to these bytes exists; the
        // borrow ends before the `Slot` that reads them is made.
        let bytes = unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) };
        write(bytes)?;
        Ok(Slot { region: self.clone(), range })
    }

    fn claim(&self, range: &Range<usize>) {
        assert!(range.start <= range.end && range.end <= self.len, "slot inside the region");
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        let before = claimed.range(..=range.start).next_back().is_some_and(|(_, &end)| end > range.start);
        let after = claimed.range(range.start..).next().is_some_and(|(&start, _)| start < range.end);
        assert!(range.is_empty() || !(before || after), "a slot is filled once");
        claimed.insert(range.start, range.end);
    }
}

/// A written slot of a [`Region`]: readable, never written again by Rust.
pub struct Slot {
    region: Arc<Region>,
    range: Range<usize>,
}

impl Slot {
    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: the slot lies in the live mapping (checked by `fill`, the
        // only way a `Slot` is made) and was fully written before this
        // `Slot` was made; `fill` never hands out its range again.
        unsafe { std::slice::from_raw_parts(self.region.ptr.add(self.range.start), self.range.len()) }
    }
}

/// Bytes that pairs point into: a pack's mapping, or an owned buffer.
pub enum Bytes {
    Mapped(Blob),
    Owned(Vec<u8>),
    /// A slot of the load's shared region; pair offsets are offsets into
    /// the whole region.
    Region(Slot),
    /// The packs of a load mapped back to back (see `Fs::map_files_together`);
    /// pair offsets are offsets into all of it.
    Group(Blob),
}

impl Bytes {
    /// The bytes themselves (for `Region`, this part's slot).
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(blob) | Bytes::Group(blob) => (**blob).as_ref(),
            Bytes::Owned(v) => v,
            Bytes::Region(slot) => slot.as_slice(),
        }
    }

    /// Where `as_slice()` starts in the frame of the pair offsets.
    pub fn base(&self) -> usize {
        match self {
            Bytes::Region(slot) => slot.range.start,
            _ => 0,
        }
    }
}

/// Pairs whose keys and values are ranges of one buffer.
pub struct PairBuf {
    pub bytes: Bytes,
    /// `[key start, key end, value start, value end]` per pair.
    pub pairs: Vec<[usize; 4]>,
}

impl PairBuf {
    pub fn key(&self, i: usize) -> &[u8] {
        let [a, b, _, _] = self.pairs[i];
        let base = self.bytes.base();
        &self.bytes.as_slice()[a - base..b - base]
    }

    pub fn value(&self, i: usize) -> &[u8] {
        let [_, _, a, b] = self.pairs[i];
        let base = self.bytes.base();
        &self.bytes.as_slice()[a - base..b - base]
    }
}

/// A scope as loaded: its parts in order (packs oldest first, then unsaved sets).
#[derive(Default)]
pub struct LoadedScope {
    pub parts: Vec<PairBuf>,
}

impl LoadedScope {
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        for part in &self.parts {
            for i in 0..part.pairs.len() {
                f(part.key(i), part.value(i));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.pairs.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_pairs(self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::with_capacity(self.len());
        self.for_each(|k, v| out.push((k.to_vec(), v.to_vec())));
        out
    }
}

pub enum LoadEvent {
    Part { scope: usize, seq: usize, part: PairBuf },
    Failed { scope: usize, error: Error },
}
