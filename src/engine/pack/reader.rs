//! Opens a pack blob: verifies its checksum, validates the index once, then
//! serves keys and values straight from the mapping (no parse step).

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use rkyv::util::AlignedVec;

use crate::engine::error::{Error, Result};
use crate::engine::fs::Blob;
use crate::engine::keyhash::hash_key;
use crate::engine::pack::format::{block_hash, ArchivedPackIndex, Codec, Header, HEADER_LEN, TRAILER_LEN};

/// How much of a pack to verify, and when. The header and index are always
/// checked on opening (their hash is the pack's id); the modes differ in the
/// blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Every block when opening: for readers of the whole pack.
    Full,
    /// Each block the first time it is read: a `get` reads one block, and
    /// must not pay for hashing the whole pack.
    OnRead,
    /// No block: for packs whose bytes never left this process's memory, or
    /// whose keys alone are read.
    IndexOnly,
}

/// The most a codec expands a block: zstd ~32768x (RLE blocks), LZ4 ~255x
/// (a byte of match length per 255 bytes). A larger claim is a damaged
/// length, and must not size an allocation.
fn max_ratio(codec: Codec) -> u64 {
    match codec {
        Codec::Zstd => 32768,
        Codec::Lz4 => 256,
    }
}

thread_local! {
    /// One zstd decompression context per thread: creating one per block costs
    /// more than decoding a 16 KiB block.
    static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

pub struct PackView {
    blob: Blob,
    header: Header,
    /// Copy of the index when the blob is not aligned for in-place access.
    index_copy: Option<AlignedVec<16>>,
    /// `(hash of key, item)`, sorted: built by the first `find` on a pack
    /// with many keys (a view `get` keeps), never by loads or saves.
    lookup: OnceLock<Box<[(u64, u32)]>>,
    /// Blocks whose hash has been checked, one bit each (all set unless
    /// opened with `Verify::OnRead`; `IndexOnly` counts as checked).
    checked: Box<[AtomicU64]>,
}

/// Up to this many keys, `find` scans them instead of building a table.
const LINEAR_FIND_MAX: usize = 64;

/// The raw (decompressed) body of a pack.
pub enum Body {
    Mapped(Blob, Range<usize>),
    Owned(Vec<u8>),
}

impl Body {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Mapped(blob, range) => &(**blob).as_ref()[range.clone()],
            Body::Owned(v) => v,
        }
    }
}

fn corrupt(id: &[u8; 32], what: impl std::fmt::Display) -> Error {
    Error::corrupted(format!("pack {}: {what}", crate::engine::pack::format::pack_file_name(id)))
}

impl PackView {
    pub fn open(blob: Blob, id: &[u8; 32], verify: Verify) -> Result<PackView> {
        let bytes = (*blob).as_ref();
        let header = Header::read(bytes).map_err(|e| corrupt(id, e))?;
        header.check_bounds(bytes.len()).map_err(|e| corrupt(id, e))?;
        let index_end = header.body_off();
        let trailer = &bytes[bytes.len() - TRAILER_LEN..];
        if header.index_hash != *id || trailer != id {
            return Err(corrupt(id, "checksum mismatch"));
        }
        if Header::compute_index_hash(bytes, index_end) != header.index_hash {
            return Err(corrupt(id, "index checksum mismatch"));
        }
        let index_bytes = &bytes[header.index_off as usize..index_end];
        let index_copy = if (index_bytes.as_ptr() as usize) % 16 == 0 {
            None
        } else {
            let mut v = AlignedVec::<16>::with_capacity(index_bytes.len());
            v.extend_from_slice(index_bytes);
            Some(v)
        };
        let mut view = PackView { blob, header, index_copy, lookup: OnceLock::new(), checked: Box::new([]) };
        view.validate_index().map_err(|e| corrupt(id, e))?;
        if (*view.blob).as_ref()[HEADER_LEN..HEADER_LEN + header.scope_len as usize].is_empty() {
            return Err(corrupt(id, "empty scope name"));
        }
        let blocks = view.index().block_raw_ends.len();
        let fill = if verify == Verify::IndexOnly { u64::MAX } else { 0 };
        view.checked = (0..blocks.div_ceil(64)).map(|_| AtomicU64::new(fill)).collect();
        if verify == Verify::Full {
            view.check_body()?;
        }
        Ok(view)
    }

    /// Checks block `b` against its hash unless that was done before.
    fn check_block(&self, index: &ArchivedPackIndex, b: usize) -> Result<()> {
        if self.block_checked(b) {
            return Ok(());
        }
        let stored = &(*self.blob).as_ref()[self.block_stored(index, b)];
        if block_hash(stored) != index.block_hashes[b] {
            return Err(Error::corrupted(format!("pack {}: block {b} checksum mismatch", self.file_name())));
        }
        self.checked[b / 64].fetch_or(1 << (b % 64), Ordering::AcqRel);
        Ok(())
    }

    fn block_checked(&self, b: usize) -> bool {
        self.checked[b / 64].load(Ordering::Acquire) & (1 << (b % 64)) != 0
    }

    /// Checks every block not checked yet: the whole body is then as written.
    pub fn check_body(&self) -> Result<()> {
        let index = self.index();
        (0..index.block_raw_ends.len()).try_for_each(|b| self.check_block(index, b))
    }

    fn body_checked(&self) -> bool {
        (0..self.index().block_raw_ends.len()).all(|b| self.block_checked(b))
    }

    fn file_name(&self) -> String {
        crate::engine::pack::format::pack_file_name(&self.header.index_hash)
    }

    fn index_bytes(&self) -> &[u8] {
        match &self.index_copy {
            Some(v) => v.as_slice(),
            None => &(*self.blob).as_ref()[self.header.index_off as usize..self.header.body_off()],
        }
    }

    fn validate_index(&self) -> std::result::Result<(), String> {
        let index = rkyv::access::<ArchivedPackIndex, rkyv::rancor::Error>(self.index_bytes())
            .map_err(|e| format!("invalid index: {e}"))?;
        let n = self.header.items as usize;
        let ends_ok = |ends: &[rkyv::rend::u64_le], last: u64| {
            ends.windows(2).all(|w| w[0].to_native() <= w[1].to_native())
                && ends.last().map_or(0, |e| e.to_native()) == last
        };
        if index.key_ends.len() != n || index.value_ends.len() != n {
            return Err("index item count does not match the header".into());
        }
        if !ends_ok(&index.key_ends, index.keys.len() as u64)
            || !ends_ok(&index.value_ends, self.header.body_raw)
            || !ends_ok(&index.block_raw_ends, self.header.body_raw)
            || !ends_ok(&index.block_stored_ends, self.header.body_stored)
            || index.block_raw_ends.len() != index.block_stored_ends.len()
            || index.block_hashes.len() != index.block_raw_ends.len()
        {
            return Err("index offsets are inconsistent".into());
        }
        for b in 0..index.block_raw_ends.len() {
            let (raw, stored) = (self.block_raw(index, b), self.block_stored(index, b));
            if stored.len() > raw.len() || raw.is_empty() {
                return Err("index block sizes are inconsistent".into());
            }
            if stored.len() < raw.len() && raw.len() as u64 > (stored.len() as u64 + 64) * max_ratio(self.header.codec)
            {
                return Err("index block claims an impossible decompressed size".into());
            }
        }
        Ok(())
    }

    fn index(&self) -> &ArchivedPackIndex {
        // SAFETY: validated with `rkyv::access` in `open`; the bytes are immutable.
        unsafe { rkyv::access_unchecked::<ArchivedPackIndex>(self.index_bytes()) }
    }

    pub fn generation(&self) -> u64 {
        self.header.generation
    }

    pub fn len(&self) -> usize {
        self.header.items as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn scope(&self) -> &[u8] {
        &(*self.blob).as_ref()[HEADER_LEN..HEADER_LEN + self.header.scope_len as usize]
    }

    fn end_range(ends: &[rkyv::rend::u64_le], i: usize) -> Range<usize> {
        let start = if i == 0 { 0 } else { ends[i - 1].to_native() as usize };
        start..ends[i].to_native() as usize
    }

    pub fn key(&self, i: usize) -> &[u8] {
        let index = self.index();
        &index.keys[Self::end_range(&index.key_ends, i)]
    }

    pub fn value_range(&self, i: usize) -> Range<usize> {
        Self::end_range(&self.index().value_ends, i)
    }

    pub fn value_len(&self, i: usize) -> u64 {
        self.value_range(i).len() as u64
    }

    fn block_raw(&self, index: &ArchivedPackIndex, b: usize) -> Range<usize> {
        Self::end_range(&index.block_raw_ends, b)
    }

    fn block_stored(&self, index: &ArchivedPackIndex, b: usize) -> Range<usize> {
        let r = Self::end_range(&index.block_stored_ends, b);
        let off = self.header.body_off();
        r.start + off..r.end + off
    }

    /// The item holding `key` (the first one, were a damaged pack to hold
    /// it twice).
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        if self.len() <= LINEAR_FIND_MAX {
            return (0..self.len()).find(|&i| self.key(i) == key);
        }
        let table = self.lookup.get_or_init(|| {
            let mut t: Vec<(u64, u32)> = (0..self.len()).map(|i| (hash_key(self.key(i)), i as u32)).collect();
            t.sort_unstable();
            t.into_boxed_slice()
        });
        let h = hash_key(key);
        let first = table.partition_point(|&(x, _)| x < h);
        table[first..].iter().take_while(|&&(x, _)| x == h).map(|&(_, i)| i as usize).find(|&i| self.key(i) == key)
    }

    fn decode_block(&self, index: &ArchivedPackIndex, b: usize, out: &mut [u8]) -> Result<()> {
        self.check_block(index, b)?;
        let stored = &(*self.blob).as_ref()[self.block_stored(index, b)];
        if stored.len() == out.len() {
            out.copy_from_slice(stored);
            return Ok(());
        }
        let result = match self.header.codec {
            Codec::Zstd => DCTX.with(|cell| {
                let mut slot = cell.borrow_mut();
                let ctx = match slot.as_mut() {
                    Some(ctx) => ctx,
                    None => slot.insert(zstd::bulk::Decompressor::new().map_err(|e| Error::Internal(e.to_string()))?),
                };
                Ok::<_, Error>(ctx.decompress_to_buffer(stored, out).map_err(|e| e.to_string()))
            })?,
            Codec::Lz4 => lz4_flex::block::decompress_into(stored, out).map_err(|e| e.to_string()),
        };
        match result {
            Ok(n) if n == out.len() => Ok(()),
            Ok(_) => Err(Error::corrupted("a pack block decompressed to the wrong length")),
            Err(e) => Err(Error::corrupted(format!("a pack block failed to decompress: {e}"))),
        }
    }

    /// The codec of this pack's compressed blocks.
    pub fn codec(&self) -> Codec {
        self.header.codec
    }

    /// `true` when keys and values can be served from the blob itself.
    pub fn is_raw_in_place(&self) -> bool {
        self.header.body_stored == self.header.body_raw && self.index_copy.is_none()
    }

    pub fn blob(&self) -> &Blob {
        &self.blob
    }

    /// Where key `i` lies in the blob (only when the index is read in place).
    pub fn key_range_in_blob(&self, i: usize) -> Option<Range<usize>> {
        self.index_copy.as_ref().map_or(Some(()), |_| None)?;
        let base = (*self.blob).as_ref().as_ptr() as usize;
        let key = self.key(i);
        let start = key.as_ptr() as usize - base;
        Some(start..start + key.len())
    }

    /// Where value `i` lies in the blob (only for a raw body, once
    /// [`check_body`](Self::check_body) has passed).
    pub fn value_range_in_blob(&self, i: usize) -> Range<usize> {
        debug_assert!(self.body_checked(), "raw values served before their blocks were checked");
        let r = self.value_range(i);
        let off = self.header.body_off();
        r.start + off..r.end + off
    }

    pub fn body_raw_len(&self) -> usize {
        self.header.body_raw as usize
    }

    /// Decodes the raw body into `out` (exactly `body_raw_len` bytes).
    pub fn decode_into(&self, out: &mut [u8]) -> Result<()> {
        let index = self.index();
        for b in 0..index.block_raw_ends.len() {
            let raw = self.block_raw(index, b);
            self.decode_block(index, b, &mut out[raw])?;
        }
        Ok(())
    }

    /// The whole raw body: the mapping itself when no block is compressed.
    pub fn decode_body(&self) -> Result<Body> {
        let off = self.header.body_off();
        if self.header.body_stored == self.header.body_raw {
            self.check_body()?;
            let range = off..off + self.header.body_raw as usize;
            return Ok(Body::Mapped(self.blob.clone(), range));
        }
        let mut out = vec![0u8; self.header.body_raw as usize];
        self.decode_into(&mut out)?;
        Ok(Body::Owned(out))
    }

    pub fn block_count(&self) -> usize {
        self.index().block_raw_ends.len()
    }

    /// Where block `b`'s values lie in the raw body.
    pub fn block_raw_range(&self, b: usize) -> Range<usize> {
        self.block_raw(self.index(), b)
    }

    /// Block `b` as stored, checked against its hash, with that hash.
    pub fn stored_block(&self, b: usize) -> Result<(&[u8], [u8; 16])> {
        let index = self.index();
        self.check_block(index, b)?;
        Ok((&(*self.blob).as_ref()[self.block_stored(index, b)], index.block_hashes[b]))
    }

    /// Block `b`'s raw bytes: in place when it is stored raw, else decoded.
    pub fn block_bytes(&self, b: usize) -> Result<std::borrow::Cow<'_, [u8]>> {
        let index = self.index();
        let (raw, stored) = (self.block_raw(index, b), self.block_stored(index, b));
        if raw.len() == stored.len() {
            self.check_block(index, b)?;
            return Ok(std::borrow::Cow::Borrowed(&(*self.blob).as_ref()[stored]));
        }
        let mut out = crate::engine::memory::zeroed(raw.len());
        self.decode_block(index, b, &mut out)?;
        Ok(std::borrow::Cow::Owned(out))
    }

    /// One value, decompressing only the block that holds it.
    pub fn read_value(&self, i: usize) -> Result<Vec<u8>> {
        let range = self.value_range(i);
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let (b, raw) = self.block_of(&range)?;
        // A block stored raw is read in place: only the value is copied. A
        // decoded block that is the value alone (a large value) is the value.
        match self.block_bytes(b)? {
            std::borrow::Cow::Owned(block) if range == raw => Ok(block),
            block => Ok(crate::engine::memory::copy_of(&block[range.start - raw.start..range.end - raw.start])),
        }
    }

    /// Several values, each block that holds one of them decoded once
    /// (`items` in any order; results in the same order).
    pub fn read_values(&self, items: &[usize]) -> Result<Vec<Vec<u8>>> {
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&n| self.value_range(items[n]).start);
        let mut out = vec![Vec::new(); items.len()];
        let mut decoded: Option<(usize, std::borrow::Cow<'_, [u8]>)> = None;
        for n in order {
            let range = self.value_range(items[n]);
            if range.is_empty() {
                continue;
            }
            let (b, raw) = self.block_of(&range)?;
            if decoded.as_ref().is_none_or(|(at, _)| *at != b) {
                decoded = Some((b, self.block_bytes(b)?));
            }
            let block = &decoded.as_ref().expect("decoded above").1;
            out[n] = crate::engine::memory::copy_of(&block[range.start - raw.start..range.end - raw.start]);
        }
        Ok(out)
    }

    /// The block holding the raw `range` (one value), and its raw range.
    fn block_of(&self, range: &Range<usize>) -> Result<(usize, Range<usize>)> {
        let index = self.index();
        let b = index.block_raw_ends.partition_point(|e| (e.to_native() as usize) <= range.start);
        if b >= index.block_raw_ends.len() {
            return Err(Error::corrupted("value lies outside every block"));
        }
        let raw = self.block_raw(index, b);
        if range.end > raw.end {
            return Err(Error::corrupted("value spans two blocks"));
        }
        Ok((b, raw))
    }
}
