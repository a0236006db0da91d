//! Byte layout of a pack file (see docs/FORMAT.md). All integers little-endian.
//!
//! ```text
//! 0    8  magic "PCKPACK\0"
//! 8    4  format version
//! 12   4  flags: the codec of compressed blocks (0 zstd, 1 lz4); other bits 0
//! 16   8  generation of the save that wrote the pack
//! 24   4  item count
//! 28   2  scope name length
//! 30   2  reserved (0)
//! 32   8  index offset (16-aligned)
//! 40   8  index length
//! 48   8  body length as stored
//! 56   8  body length raw (sum of value lengths)
//! 64  32  index hash: blake3(bytes 0..64 ++ bytes 96..index end), the
//!         pack's id and file name
//! 96      scope name, zero padding to 16
//!         index: rkyv archive of `PackIndex`, with a hash of every block
//!         body: blocks, each compressed with the pack's codec or raw (raw
//!         when stored length == raw length)
//! end-32  the id again
//! ```
//!
//! The id covers the header and the index, and the index holds each block's
//! hash, so the id commits to every byte while a reader can check one block
//! without reading the others.

use rkyv::{Archive, Deserialize, Serialize};

pub const PACK_MAGIC: [u8; 8] = *b"PCKPACK\0";
/// 3: the header's flags name the codec (format 2 had zstd only).
pub const PACK_FORMAT: u32 = 3;
pub const HEADER_LEN: usize = 96;
pub const TRAILER_LEN: usize = 32;
pub const INDEX_ALIGN: usize = 16;
/// Raw bytes per compressed block: `get` decompresses one block, not the pack.
/// Readers take block bounds from the index, so this is the writer's choice.
pub const BLOCK_SIZE: usize = 64 * 1024;
/// Items per block at most: blocks of small values stay small (cheap `get`).
pub const BLOCK_ITEMS: usize = 64;

/// The pack index. Item `i` has key `keys[key_ends[i-1]..key_ends[i]]` and raw
/// value `body[value_ends[i-1]..value_ends[i]]` (with `ends[-1] = 0`).
/// Blocks split the raw body only at value boundaries.
#[derive(Archive, Serialize, Deserialize, Debug, Default)]
pub struct PackIndex {
    pub key_ends: Vec<u64>,
    pub keys: Vec<u8>,
    pub value_ends: Vec<u64>,
    pub block_raw_ends: Vec<u64>,
    pub block_stored_ends: Vec<u64>,
    /// [`block_hash`] of each block as stored.
    pub block_hashes: Vec<[u8; 16]>,
}

/// The check of one stored block: the first 16 bytes of its blake3.
pub fn block_hash(stored: &[u8]) -> [u8; 16] {
    let mut out = [0; 16];
    out.copy_from_slice(&blake3::hash(stored).as_bytes()[..16]);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub codec: Codec,
    pub generation: u64,
    pub items: u32,
    pub scope_len: u16,
    pub index_off: u64,
    pub index_len: u64,
    pub body_stored: u64,
    pub body_raw: u64,
    pub index_hash: [u8; 32],
}

/// How a pack's compressed blocks are encoded. A block stored at its raw
/// length is raw, whatever the codec; a `'none'` pack has only raw blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Codec {
    Zstd = 0,
    Lz4 = 1,
}

pub fn align_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl Header {
    pub fn write(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&PACK_MAGIC);
        out[8..12].copy_from_slice(&PACK_FORMAT.to_le_bytes());
        out[12..16].copy_from_slice(&(self.codec as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.generation.to_le_bytes());
        out[24..28].copy_from_slice(&self.items.to_le_bytes());
        out[28..30].copy_from_slice(&self.scope_len.to_le_bytes());
        out[30..32].fill(0);
        out[32..40].copy_from_slice(&self.index_off.to_le_bytes());
        out[40..48].copy_from_slice(&self.index_len.to_le_bytes());
        out[48..56].copy_from_slice(&self.body_stored.to_le_bytes());
        out[56..64].copy_from_slice(&self.body_raw.to_le_bytes());
        out[64..96].copy_from_slice(&self.index_hash);
    }

    /// Parses the fixed header; `Err` names what is wrong.
    pub fn read(bytes: &[u8]) -> Result<Header, String> {
        if bytes.len() < HEADER_LEN + TRAILER_LEN {
            return Err(format!("pack too short ({} bytes)", bytes.len()));
        }
        if bytes[0..8] != PACK_MAGIC {
            return Err("bad pack magic".into());
        }
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
        let format = u32_at(8);
        if format != PACK_FORMAT {
            return Err(format!("unsupported pack format version {format}"));
        }
        let codec = match u32_at(12) {
            0 => Codec::Zstd,
            1 => Codec::Lz4,
            other => return Err(format!("unknown pack flags {other:#x}")),
        };
        Ok(Header {
            codec,
            generation: u64_at(16),
            items: u32_at(24),
            scope_len: u16::from_le_bytes(bytes[28..30].try_into().unwrap()),
            index_off: u64_at(32),
            index_len: u64_at(40),
            body_stored: u64_at(48),
            body_raw: u64_at(56),
            index_hash: bytes[64..96].try_into().unwrap(),
        })
    }

    /// Offset of the body; callers must have checked `check_bounds`.
    pub fn body_off(&self) -> usize {
        (self.index_off + self.index_len) as usize
    }

    /// Checks that every region lies inside a file of `file_len` bytes.
    pub fn check_bounds(&self, file_len: usize) -> Result<(), String> {
        let scope_end = HEADER_LEN as u64 + self.scope_len as u64;
        let expect_index_off = align_up(scope_end as usize, INDEX_ALIGN) as u64;
        let total = self
            .index_off
            .checked_add(self.index_len)
            .and_then(|n| n.checked_add(self.body_stored))
            .and_then(|n| n.checked_add(TRAILER_LEN as u64));
        if self.index_off != expect_index_off || total != Some(file_len as u64) {
            return Err("pack header does not match the file length".into());
        }
        Ok(())
    }

    /// Hash over the header fields and the scope + index region.
    pub fn compute_index_hash(bytes: &[u8], index_end: usize) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&bytes[0..64]);
        hasher.update(&bytes[HEADER_LEN..index_end]);
        *hasher.finalize().as_bytes()
    }
}

/// File name of a pack: the first 16 bytes of its id, in hex.
pub fn pack_file_name(id: &[u8; 32]) -> String {
    let hex = blake3::Hash::from_bytes(*id).to_hex();
    format!("{}.pack", &hex[..32])
}

/// `true` for names that `pack_file_name` produces.
pub fn is_pack_file_name(name: &str) -> bool {
    name.len() == 37 && name.ends_with(".pack") && is_lower_hex(&name[..32])
}

/// `true` when `s` is lowercase hex digits only (the names packcache gives
/// its files and directories).
pub fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
