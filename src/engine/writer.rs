//! Serializes a batch of items into one pack blob: one output buffer, blocks
//! compressed one after another into it, no allocation per item.

use super::bloom;
use super::error::{Error, Result};
use super::format::{align_up, Header, PackIndex, BLOCK_SIZE, HEADER_LEN, INDEX_ALIGN};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd(i32),
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
    let count = u32::try_from(items.len()).map_err(|_| Error::InvalidArg("too many items in one pack".into()))?;
    let mut index = PackIndex::default();
    let mut key_end = 0u64;
    let mut value_end = 0u64;
    for (key, value) in items {
        key_end += key.len() as u64;
        value_end += value.len() as u64;
        index.key_ends.push(key_end);
        index.value_ends.push(value_end);
    }
    index.keys.reserve_exact(key_end as usize);
    for (key, _) in items {
        index.keys.extend_from_slice(key);
    }
    let body = encode_body(items, value_end as usize, compression, &mut index, values, reuse)?;
    let archived = rkyv::to_bytes::<rkyv::rancor::Error>(&index)
        .map_err(|e| Error::Internal(format!("index serialization failed: {e}")))?;

    let index_off = align_up(HEADER_LEN + scope.len(), INDEX_ALIGN);
    let index_end = index_off + archived.len();
    let mut head = Vec::with_capacity(index_end);
    head.resize(index_off, 0);
    head[HEADER_LEN..HEADER_LEN + scope.len()].copy_from_slice(scope.as_bytes());
    head.extend_from_slice(&archived);
    let mut header = Header {
        generation,
        items: count,
        scope_len: scope.len() as u16,
        index_off: index_off as u64,
        index_len: archived.len() as u64,
        body_stored: body.len() as u64,
        body_raw: value_end,
        index_hash: [0; 32],
    };
    header.write(&mut head[..HEADER_LEN]);
    header.index_hash = Header::compute_index_hash(&head, index_end);
    header.write(&mut head[..HEADER_LEN]);
    let mut hasher = blake3::Hasher::new();
    hasher.update(&head);
    hasher.update(&body);
    let id = *hasher.finalize().as_bytes();
    let bloom = bloom::build(items.iter().map(|(k, _)| *k));
    Ok(EncodedPack { id, head, body, items: count, raw_bytes: key_end + value_end, bloom })
}

/// Groups values into blocks of about `BLOCK_SIZE` raw bytes (never splitting
/// a value) and compresses each straight into the body; a block that does not
/// shrink is stored raw. The body never exceeds the raw size, so it is sized
/// once and only the pages written are ever touched.
fn encode_body(
    items: &[(&[u8], &[u8])],
    raw_len: usize,
    compression: Compression,
    index: &mut PackIndex,
    parent: &[u8],
    mut body: Vec<u8>,
) -> Result<Vec<u8>> {
    body.clear();
    body.reserve(raw_len + BLOCK_SIZE);
    let mut scratch = Vec::with_capacity(BLOCK_SIZE * 2);
    let mut compressor = match compression {
        Compression::Zstd(level) => {
            Some(zstd::bulk::Compressor::new(level).map_err(|e| Error::Internal(format!("zstd init failed: {e}")))?)
        }
        Compression::None => None,
    };
    let mut raw_end = 0u64;
    let mut i = 0;
    while i < items.len() {
        let start = i;
        let mut len = 0;
        while i < items.len() && (len == 0 || len + items[i].1.len() <= BLOCK_SIZE) {
            len += items[i].1.len();
            i += 1;
        }
        if len == 0 {
            continue; // only empty values so far: they need no block
        }
        let block = match run_in(parent, &items[start..i]) {
            Some(run) => run,
            None => {
                scratch.clear();
                items[start..i].iter().for_each(|(_, v)| scratch.extend_from_slice(v));
                &scratch[..]
            }
        };
        raw_end += block.len() as u64;
        let at = body.len();
        let kept = match compressor.as_mut() {
            Some(c) => compress_into(c, block, &mut body)?,
            None => false,
        };
        if !kept {
            body.truncate(at);
            body.extend_from_slice(block);
        }
        index.block_raw_ends.push(raw_end);
        index.block_stored_ends.push(body.len() as u64);
    }
    Ok(body)
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

/// Appends the zstd frame of `block` to `body`; `false` (and `body`
/// unchanged in length) when the frame would not be smaller than the block.
fn compress_into(c: &mut zstd::bulk::Compressor<'_>, block: &[u8], body: &mut Vec<u8>) -> Result<bool> {
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

    #[test]
    fn values_compressed_in_place_give_the_same_pack_as_copied_ones() {
        let keys: Vec<Vec<u8>> = (0..400u32).map(|i| format!("k{i}").into_bytes()).collect();
        let mut values = Vec::new();
        let mut ends = Vec::new();
        for i in 0..400usize {
            values.extend(format!("value {i} ").repeat(i % 50 + (i % 7) * 300).bytes());
            ends.push(values.len());
        }
        let slices: Vec<&[u8]> = (0..400).map(|i| &values[if i == 0 { 0 } else { ends[i - 1] }..ends[i]]).collect();
        // Item 10 left out: the block holding the gap is copied, the rest not.
        let items: Vec<(&[u8], &[u8])> =
            (0..400).filter(|&i| i != 10).map(|i| (keys[i].as_slice(), slices[i])).collect();
        for compression in [Compression::None, Compression::Zstd(1)] {
            let copied = encode_pack("s", 1, &items, compression).unwrap();
            let in_place = encode_pack_in("s", 1, &items, compression, &values, Vec::new()).unwrap();
            assert_eq!(in_place.to_bytes(), copied.to_bytes());
            assert!(run_in(&values, &items[20..30]).is_some() && run_in(&values, &items[5..15]).is_none());
        }
    }
}
