//! Serializes a batch of items into one pack blob: one output buffer, blocks
//! compressed one after another into it, no allocation per item.

use crate::engine::error::{Error, Result};
use crate::engine::pack::bloom;
use crate::engine::pack::format::{
    align_up, block_hash, Codec, Header, PackIndex, BLOCK_ITEMS, BLOCK_SIZE, HEADER_LEN, INDEX_ALIGN,
};

/// How new packs are written. Packs of every kind are read whatever this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Every block raw: served from the file's mapping.
    None,
    /// zstd at a level: the smallest packs.
    Zstd(i32),
    /// LZ4 (`lz4_flex`): decodes ≈ 3× and encodes ≈ 1.5× faster than zstd
    /// level 1 on the benchmark's blocks, for ≈ 25 % more bytes.
    Lz4,
}

impl Compression {
    /// The codec of the blocks it compresses; `None` for `'none'`.
    pub fn codec(self) -> Option<Codec> {
        match self {
            Compression::None => None,
            Compression::Zstd(_) => Some(Codec::Zstd),
            Compression::Lz4 => Some(Codec::Lz4),
        }
    }

    /// What a pack's header records (a `'none'` pack has no compressed block).
    fn header_codec(self) -> Codec {
        self.codec().unwrap_or(Codec::Zstd)
    }
}

/// A finished pack, ready to be written to `<id>.pack`: `head` (header,
/// scope, index), `body`, then `id` as the trailer. Kept in parts so the
/// compressed body is never copied into a second buffer.
pub struct EncodedPack {
    pub id: [u8; 32],
    pub head: Vec<u8>,
    pub body: Vec<u8>,
    pub items: u32,
    pub raw_bytes: u64,
    pub bloom: Vec<u64>,
}

impl EncodedPack {
    pub fn parts(&self) -> [&[u8]; 3] {
        [&self.head, &self.body, &self.id]
    }

    pub fn file_len(&self) -> u64 {
        (self.head.len() + self.body.len() + self.id.len()) as u64
    }

    /// The whole file in one buffer (tests and tools).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.parts().concat()
    }
}

/// The one rule for cutting items into packs (staging chunks and
/// compaction's new packs alike): an item starts a new pack when the current
/// one holds something and the item would take it past `pack_size`.
pub fn starts_new_pack(current_size: u64, is_empty: bool, item: u64, pack_size: u64) -> bool {
    !is_empty && current_size + item > pack_size
}

/// Per-item raw size used for pack sizing and liveness accounting.
pub fn item_size(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

/// Encodes `items` (unique keys) of `scope` into a pack.
pub fn encode_pack(
    scope: &str,
    generation: u64,
    items: &[(&[u8], &[u8])],
    compression: Compression,
) -> Result<EncodedPack> {
    encode_pack_in(scope, generation, items, compression, &[], Vec::new())
}

/// `encode_pack` for items whose values lie in `values`, back to back: each
/// block is compressed straight from that buffer instead of a copy (blocks
/// with a gap, or values elsewhere, are copied as usual). The body is written
/// into `reuse` (cleared first), so a caller can recycle buffers.
pub fn encode_pack_in(
    scope: &str,
    generation: u64,
    items: &[(&[u8], &[u8])],
    compression: Compression,
    values: &[u8],
    reuse: Vec<u8>,
) -> Result<EncodedPack> {
    let mut index = index_of(sized(items));
    let mut body = reuse;
    body.clear();
    body.reserve(index.value_ends.last().copied().unwrap_or(0) as usize + BLOCK_SIZE);
    append_blocks(items, compression, &mut index, values, &mut body, 0)?;
    let keys = items.iter().map(|(k, _)| *k);
    let mut pack = seal(scope, generation, compression.header_codec(), items.len(), keys, &index, body.len())?;
    pack.body = body;
    Ok(pack)
}

/// A block of another pack whose values all go into a new pack: its stored
/// bytes are copied as they are, not decoded and encoded again.
pub struct CopiedBlock<'a> {
    /// The block as stored (checked against `hash` by the caller).
    pub stored: &'a [u8],
    pub hash: [u8; 16],
    /// The block's values in order: each one's key and length. The lengths
    /// add up to the block's raw size.
    pub items: Vec<(&'a [u8], u64)>,
}

/// A pack of `copied` blocks (in order, as stored) followed by `loose` items
/// encoded as usual: what compaction writes when most of a pack's blocks
/// are still wholly live.
pub fn encode_pack_with(
    scope: &str,
    generation: u64,
    copied: &[CopiedBlock<'_>],
    loose: &[(&[u8], &[u8])],
    compression: Compression,
) -> Result<EncodedPack> {
    let all: Vec<(&[u8], u64)> = copied.iter().flat_map(|b| b.items.iter().copied()).chain(sized(loose)).collect();
    let mut index = index_of(all.iter().copied());
    let stored: usize = copied.iter().map(|b| b.stored.len()).sum();
    let loose_raw: usize = loose.iter().map(|(_, v)| v.len()).sum();
    let mut body = Vec::with_capacity(stored + loose_raw + BLOCK_SIZE);
    let mut raw_end = 0u64;
    for block in copied {
        raw_end += block.items.iter().map(|(_, len)| len).sum::<u64>();
        body.extend_from_slice(block.stored);
        index.block_raw_ends.push(raw_end);
        index.block_stored_ends.push(body.len() as u64);
        index.block_hashes.push(block.hash);
    }
    append_blocks(loose, compression, &mut index, &[], &mut body, raw_end)?;
    let keys = all.iter().map(|(k, _)| *k);
    let mut pack = seal(scope, generation, compression.header_codec(), all.len(), keys, &index, body.len())?;
    pack.body = body;
    Ok(pack)
}

/// Keys with their values' lengths.
fn sized<'a>(items: &'a [(&'a [u8], &'a [u8])]) -> impl Iterator<Item = (&'a [u8], u64)> + Clone + 'a {
    items.iter().map(|(k, v)| (*k, v.len() as u64))
}

/// An uncompressed pack lacking only its body, which is to be the caller's
/// buffer of values itself (moved in by [`RawPack::with_body`], not copied).
pub struct RawPack {
    pack: EncodedPack,
    body_len: usize,
}

impl RawPack {
    /// The pack with `values` as its body: the buffer `raw_pack_over` saw.
    pub fn with_body(mut self, values: Vec<u8>) -> EncodedPack {
        debug_assert_eq!(values.len(), self.body_len, "a raw pack given another body");
        self.pack.body = values;
        self.pack
    }
}

/// For `Compression::None`, when the items' values fill `values` exactly,
/// back to back: the pack made by `encode_pack_in`, except that its body is
/// left for the caller to move in; `None` otherwise.
pub fn raw_pack_over(scope: &str, generation: u64, items: &[(&[u8], &[u8])], values: &[u8]) -> Result<Option<RawPack>> {
    let fills = run_in(values, items).is_some_and(|run| run.as_ptr() == values.as_ptr() && run.len() == values.len());
    if !fills {
        return Ok(None);
    }
    let mut index = index_of(sized(items));
    let mut raw_end = 0u64;
    for block in blocks(items) {
        let start = raw_end as usize;
        raw_end += items[block].iter().map(|(_, v)| v.len() as u64).sum::<u64>();
        index.block_raw_ends.push(raw_end);
        index.block_stored_ends.push(raw_end);
        index.block_hashes.push(block_hash(&values[start..raw_end as usize]));
    }
    let keys = items.iter().map(|(k, _)| *k);
    let pack = seal(scope, generation, Compression::None.header_codec(), items.len(), keys, &index, values.len())?;
    Ok(Some(RawPack { pack, body_len: values.len() }))
}

/// The index of items given as keys and value lengths, without its block ends.
fn index_of<'a>(items: impl Iterator<Item = (&'a [u8], u64)> + Clone) -> PackIndex {
    let mut index = PackIndex::default();
    let (mut key_end, mut value_end) = (0u64, 0u64);
    for (key, value_len) in items.clone() {
        key_end += key.len() as u64;
        value_end += value_len;
        index.key_ends.push(key_end);
        index.value_ends.push(value_end);
    }
    index.keys.reserve_exact(key_end as usize);
    for (key, _) in items {
        index.keys.extend_from_slice(key);
    }
    index
}

/// Header, index and id of a pack whose body (left out of the result) is
/// `body_len` bytes of the blocks `index` describes.
fn seal<'k>(
    scope: &str,
    generation: u64,
    codec: Codec,
    items: usize,
    keys: impl ExactSizeIterator<Item = &'k [u8]>,
    index: &PackIndex,
    body_len: usize,
) -> Result<EncodedPack> {
    let count = u32::try_from(items).map_err(|_| Error::InvalidArg("too many items in one pack".into()))?;
    let key_bytes = index.keys.len() as u64;
    let value_bytes = index.value_ends.last().copied().unwrap_or(0);
    let archived = rkyv::to_bytes::<rkyv::rancor::Error>(index)
        .map_err(|e| Error::Internal(format!("index serialization failed: {e}")))?;

    let index_off = align_up(HEADER_LEN + scope.len(), INDEX_ALIGN);
    let index_end = index_off + archived.len();
    let mut head = Vec::with_capacity(index_end);
    head.resize(index_off, 0);
    head[HEADER_LEN..HEADER_LEN + scope.len()].copy_from_slice(scope.as_bytes());
    head.extend_from_slice(&archived);
    let mut header = Header {
        codec,
        generation,
        items: count,
        scope_len: scope.len() as u16,
        index_off: index_off as u64,
        index_len: archived.len() as u64,
        body_stored: body_len as u64,
        body_raw: value_bytes,
        index_hash: [0; 32],
    };
    header.write(&mut head[..HEADER_LEN]);
    header.index_hash = Header::compute_index_hash(&head, index_end);
    header.write(&mut head[..HEADER_LEN]);
    let id = header.index_hash;
    let bloom = bloom::build(keys);
    Ok(EncodedPack { id, head, body: Vec::new(), items: count, raw_bytes: key_bytes + value_bytes, bloom })
}

/// Item ranges of the body's blocks: at most `BLOCK_SIZE` raw bytes (or one
/// larger value) and `BLOCK_ITEMS` items each, never splitting a value; runs
/// of empty values need no block.
fn blocks(items: &[(&[u8], &[u8])]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let start = i;
        let mut len = 0;
        while i < items.len() && (i == start || (len + items[i].1.len() <= BLOCK_SIZE && i - start < BLOCK_ITEMS)) {
            len += items[i].1.len();
            i += 1;
        }
        if len > 0 {
            out.push(start..i);
        }
    }
    out
}

/// Compresses each block of `items` (see [`blocks`]) onto the end of the
/// body, whose blocks so far hold `raw_end` raw bytes; a block that does not
/// shrink is stored raw. The body never grows past its raw size plus one
/// block, so callers size it once and only the pages written are touched.
fn append_blocks(
    items: &[(&[u8], &[u8])],
    compression: Compression,
    index: &mut PackIndex,
    parent: &[u8],
    body: &mut Vec<u8>,
    mut raw_end: u64,
) -> Result<()> {
    let mut scratch = Vec::with_capacity(BLOCK_SIZE * 2);
    let mut encoder = Encoder::new(compression)?;
    for range in blocks(items) {
        let block = match run_in(parent, &items[range.clone()]) {
            Some(run) => run,
            None => {
                scratch.clear();
                items[range].iter().for_each(|(_, v)| scratch.extend_from_slice(v));
                &scratch[..]
            }
        };
        raw_end += block.len() as u64;
        let at = body.len();
        let kept = encoder.append(block, body)?;
        if !kept {
            body.truncate(at);
            body.extend_from_slice(block);
        }
        index.block_raw_ends.push(raw_end);
        index.block_stored_ends.push(body.len() as u64);
        index.block_hashes.push(block_hash(&body[at..]));
    }
    Ok(())
}

/// The values of `items` as one slice of `parent`, when they lie in it back
/// to back.
fn run_in<'p>(parent: &'p [u8], items: &[(&[u8], &[u8])]) -> Option<&'p [u8]> {
    let base = parent.as_ptr() as usize;
    let first = items.first()?.1.as_ptr() as usize;
    let start = first.checked_sub(base)?;
    let mut end = start;
    for (_, v) in items {
        if v.as_ptr() as usize != base + end {
            return None;
        }
        end += v.len();
    }
    parent.get(start..end)
}

/// The codec of one `append_blocks` call, with its reusable state.
enum Encoder {
    None,
    Zstd(zstd::bulk::Compressor<'static>),
    /// LZ4's output buffer, sized for a block that does not shrink.
    Lz4(Vec<u8>),
}

impl Encoder {
    fn new(compression: Compression) -> Result<Encoder> {
        Ok(match compression {
            Compression::None => Encoder::None,
            Compression::Zstd(level) => Encoder::Zstd(
                zstd::bulk::Compressor::new(level).map_err(|e| Error::Internal(format!("zstd init failed: {e}")))?,
            ),
            Compression::Lz4 => Encoder::Lz4(Vec::new()),
        })
    }

    /// Appends `block` compressed to `body` when that is strictly smaller
    /// (`true`); else leaves `body` as it was (`false`: stored raw).
    fn append(&mut self, block: &[u8], body: &mut Vec<u8>) -> Result<bool> {
        match self {
            Encoder::None => Ok(false),
            Encoder::Zstd(c) => compress_into(c, block, body),
            Encoder::Lz4(out) => {
                out.resize(lz4_flex::block::get_maximum_output_size(block.len()), 0);
                let n = lz4_flex::block::compress_into(block, out)
                    .map_err(|e| Error::Internal(format!("lz4 failed: {e}")))?;
                if n >= block.len() {
                    return Ok(false);
                }
                body.extend_from_slice(&out[..n]);
                Ok(true)
            }
        }
    }
}

/// Appends the zstd frame of `block` to `body`; `false` (and `body`
/// unchanged in length) when the frame would not be smaller than the block.
fn compress_into(c: &mut zstd::bulk::Compressor<'static>, block: &[u8], body: &mut Vec<u8>) -> Result<bool> {
    let start = body.len();
    body.reserve(zstd::zstd_safe::compress_bound(block.len()));
    let mut cursor = std::io::Cursor::new(std::mem::take(body));
    cursor.set_position(start as u64);
    let written = c.compress_to_buffer(block, &mut cursor);
    *body = cursor.into_inner();
    let written = written.map_err(|e| Error::Internal(format!("zstd failed: {e}")))?;
    debug_assert_eq!(body.len(), start + written);
    if written >= block.len() {
        body.truncate(start);
        return Ok(false);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` keys, and their values back to back in one buffer with their ends.
    fn back_to_back(n: usize, value: impl Fn(usize) -> String) -> (Vec<Vec<u8>>, Vec<u8>, Vec<usize>) {
        let keys = (0..n).map(|i| format!("key/{i}").into_bytes()).collect();
        let mut values = Vec::new();
        let mut ends = Vec::new();
        for i in 0..n {
            values.extend(value(i).bytes());
            ends.push(values.len());
        }
        (keys, values, ends)
    }

    #[test]
    fn values_compressed_in_place_give_the_same_pack_as_copied_ones() {
        let (keys, values, ends) = back_to_back(400, |i| format!("value {i} ").repeat(i % 50 + (i % 7) * 300));
        let slices: Vec<&[u8]> = (0..400).map(|i| &values[if i == 0 { 0 } else { ends[i - 1] }..ends[i]]).collect();
        // Item 10 left out: the block holding the gap is copied, the rest not.
        let items: Vec<(&[u8], &[u8])> =
            (0..400).filter(|&i| i != 10).map(|i| (keys[i].as_slice(), slices[i])).collect();
        for compression in [Compression::None, Compression::Zstd(1), Compression::Lz4] {
            let copied = encode_pack("s", 1, &items, compression).unwrap();
            let in_place = encode_pack_in("s", 1, &items, compression, &values, Vec::new()).unwrap();
            assert_eq!(in_place.to_bytes(), copied.to_bytes());
            assert!(run_in(&values, &items[20..30]).is_some() && run_in(&values, &items[5..15]).is_none());
        }
        // A gap (item 10 left out): the values do not fill the buffer.
        assert!(raw_pack_over("s", 1, &items, &values).unwrap().is_none());
    }

    #[test]
    fn blocks_end_at_block_size_or_block_items_and_never_split_a_value() {
        let small: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 4]).collect();
        let big: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; [10_000, 70_000, 0][i % 3]]).collect();
        let after_empty: Vec<Vec<u8>> = (0..300).map(|i| vec![1; if i < 150 { 0 } else { 3 }]).collect();
        for values in [small, big, after_empty] {
            let items: Vec<(&[u8], &[u8])> = values.iter().map(|v| (&b"k"[..], v.as_slice())).collect();
            let cut = blocks(&items);
            let mut next = 0;
            for range in &cut {
                let bytes: usize = items[range.clone()].iter().map(|(_, v)| v.len()).sum();
                assert!(range.len() <= BLOCK_ITEMS, "{range:?} holds too many items");
                assert!(bytes <= BLOCK_SIZE || range.len() == 1, "{range:?} holds {bytes} bytes");
                assert!(items[next..range.start].iter().all(|(_, v)| v.is_empty()), "a value was left out");
                next = range.end;
            }
            assert!(items[next..].iter().all(|(_, v)| v.is_empty()));
        }
        let tiny: Vec<(&[u8], &[u8])> = (0..1000).map(|_| (&b"k"[..], &b"four"[..])).collect();
        assert_eq!(blocks(&tiny).len(), 1000usize.div_ceil(BLOCK_ITEMS));
    }

    #[test]
    fn a_raw_pack_over_its_values_is_the_copied_pack_byte_for_byte() {
        // Empty values too, and some larger than a block.
        let (keys, values, ends) = back_to_back(300, |i| format!("v{i};").repeat([0, 3, 40, 900, 9000][i % 5]));
        let items: Vec<(&[u8], &[u8])> =
            (0..300).map(|i| (keys[i].as_slice(), &values[if i == 0 { 0 } else { ends[i - 1] }..ends[i]])).collect();
        let copied = encode_pack("s", 4, &items, Compression::None).unwrap().to_bytes();
        let raw = raw_pack_over("s", 4, &items, &values).unwrap().expect("the values fill the buffer");
        drop(items);
        let owned = values.clone();
        assert!(raw_pack_over("s", 4, &[], &owned).unwrap().is_none());
        assert_eq!(raw.with_body(owned).to_bytes(), copied);
    }
}
