//! Serializes a batch of items into one pack blob: one output buffer, blocks
//! compressed one after another into it, no allocation per item.

use super::bloom;
use super::error::{Error, Result};
use super::format::{align_up, Header, PackIndex, BLOCK_SIZE, HEADER_LEN, INDEX_ALIGN, TRAILER_LEN};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd(i32),
}

/// A finished pack, ready to be written to `<id>.pack`.
pub struct EncodedPack {
    pub id: [u8; 32],
    pub bytes: Vec<u8>,
    pub items: u32,
    pub raw_bytes: u64,
    pub bloom: Vec<u64>,
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
    let body = encode_body(items, compression, &mut index)?;
    let archived = rkyv::to_bytes::<rkyv::rancor::Error>(&index)
        .map_err(|e| Error::Internal(format!("index serialization failed: {e}")))?;

    let index_off = align_up(HEADER_LEN + scope.len(), INDEX_ALIGN);
    let index_end = index_off + archived.len();
    let total = index_end + body.len() + TRAILER_LEN;
    let mut out = Vec::with_capacity(total);
    out.resize(index_off, 0);
    out[HEADER_LEN..HEADER_LEN + scope.len()].copy_from_slice(scope.as_bytes());
    out.extend_from_slice(&archived);
    out.extend_from_slice(&body);
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
    header.write(&mut out[..HEADER_LEN]);
    header.index_hash = Header::compute_index_hash(&out, index_end);
    header.write(&mut out[..HEADER_LEN]);
    let id = *blake3::hash(&out).as_bytes();
    out.extend_from_slice(&id);
    let bloom = bloom::build(items.iter().map(|(k, _)| *k));
    Ok(EncodedPack { id, bytes: out, items: count, raw_bytes: key_end + value_end, bloom })
}

/// Groups values into blocks of about `BLOCK_SIZE` raw bytes (never splitting
/// a value) and compresses each; a block that does not shrink is stored raw.
fn encode_body(items: &[(&[u8], &[u8])], compression: Compression, index: &mut PackIndex) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut scratch = Vec::with_capacity(BLOCK_SIZE * 2);
    let mut compressor = match compression {
        Compression::Zstd(level) => Some(
            zstd::bulk::Compressor::new(level)
                .map_err(|e| Error::Internal(format!("zstd init failed: {e}")))?,
        ),
        Compression::None => None,
    };
    let mut raw_end = 0u64;
    let mut i = 0;
    while i < items.len() {
        scratch.clear();
        while i < items.len() && (scratch.is_empty() || scratch.len() + items[i].1.len() <= BLOCK_SIZE) {
            scratch.extend_from_slice(items[i].1);
            i += 1;
        }
        if scratch.is_empty() {
            continue; // only empty values so far: they need no block
        }
        raw_end += scratch.len() as u64;
        let compressed = match compressor.as_mut() {
            Some(c) => Some(c.compress(&scratch).map_err(|e| Error::Internal(format!("zstd failed: {e}")))?),
            None => None,
        };
        match compressed {
            Some(c) if c.len() < scratch.len() => body.extend_from_slice(&c),
            _ => body.extend_from_slice(&scratch),
        }
        index.block_raw_ends.push(raw_end);
        index.block_stored_ends.push(body.len() as u64);
    }
    Ok(body)
}
