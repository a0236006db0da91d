//! The manifest: the single commit point of a version directory. It lists,
//! per scope, the packs in write order (newer shadow older) and which of their
//! items are dead. A save commits by writing a temp file and renaming it over
//! `MANIFEST`; readers only ever see a whole old or a whole new manifest.
//!
//! ```text
//! 0   8  magic "PCKMANI\0"
//! 8   4  format version
//! 12  4  reserved (0)
//! 16  8  payload length
//! 24  8  reserved (0)
//! 32     payload: rkyv archive of `Manifest`
//! end-32 blake3 of every byte before it
//! ```

use std::path::Path;

use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::engine::error::{Error, Result};
use crate::engine::fs::Fs;
use crate::engine::layout::MANIFEST_NAME;
use crate::engine::pack::format::pack_file_name;
use crate::engine::pack::writer::EncodedPack;

pub const MANIFEST_MAGIC: [u8; 8] = *b"PCKMANI\0";
pub const MANIFEST_FORMAT: u32 = 1;
const HEADER: usize = 32;
const TRAILER: usize = 32;

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    /// Incremented by every commit; written into each pack of that commit.
    pub generation: u64,
    pub version: String,
    pub scopes: Vec<ScopeMeta>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ScopeMeta {
    pub name: String,
    /// Oldest first.
    pub packs: Vec<PackMeta>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct PackMeta {
    /// The pack's index hash, which commits to every byte (see `format`);
    /// its trailer repeats it.
    pub id: [u8; 32],
    pub file_len: u64,
    pub items: u32,
    /// Sum of key and value lengths of all items.
    pub raw_bytes: u64,
    /// Sorted indexes of items shadowed by a newer pack or removed.
    pub dead: Vec<u32>,
    pub dead_bytes: u64,
    pub bloom: Vec<u64>,
}

impl PackMeta {
    /// The entry of a freshly written pack: every item live.
    pub fn of(pack: &EncodedPack) -> PackMeta {
        PackMeta {
            id: pack.id,
            file_len: pack.file_len(),
            items: pack.items,
            raw_bytes: pack.raw_bytes,
            dead: Vec::new(),
            dead_bytes: 0,
            bloom: pack.bloom.clone(),
        }
    }

    pub fn file_name(&self) -> String {
        pack_file_name(&self.id)
    }

    pub fn live_items(&self) -> u32 {
        self.items - self.dead.len() as u32
    }

    pub fn is_dead(&self, item: u32) -> bool {
        self.dead.binary_search(&item).is_ok()
    }
}

impl Manifest {
    pub fn scope(&self, name: &str) -> Option<&ScopeMeta> {
        self.scopes.iter().find(|s| s.name == name)
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        let payload = rkyv::to_bytes::<rkyv::rancor::Error>(self)
            .map_err(|e| Error::Internal(format!("manifest serialization failed: {e}")))?;
        let mut out = Vec::with_capacity(HEADER + payload.len() + TRAILER);
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&MANIFEST_FORMAT.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&payload);
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Manifest> {
        let bad = |what: &str| Error::corrupted(format!("manifest: {what}"));
        if bytes.len() < HEADER + TRAILER {
            return Err(bad("too short"));
        }
        if bytes[0..8] != MANIFEST_MAGIC {
            return Err(bad("bad magic"));
        }
        let format = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if format != MANIFEST_FORMAT {
            return Err(bad(&format!("unsupported format version {format}")));
        }
        let len = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
        if len != (bytes.len() - HEADER - TRAILER) as u64 {
            return Err(bad("length does not match the file"));
        }
        let (content, trailer) = bytes.split_at(bytes.len() - TRAILER);
        if blake3::hash(content).as_bytes() != trailer {
            return Err(bad("checksum mismatch"));
        }
        let mut aligned = AlignedVec::<16>::with_capacity(len as usize);
        aligned.extend_from_slice(&content[HEADER..]);
        let manifest = rkyv::from_bytes::<Manifest, rkyv::rancor::Error>(&aligned)
            .map_err(|e| bad(&format!("invalid payload: {e}")))?;
        manifest.validate().map_err(|e| bad(&e))?;
        Ok(manifest)
    }

    /// Structural checks that the checksum alone cannot give (a bug or a
    /// foreign writer): sorted dead lists within range, unique scope names.
    fn validate(&self) -> std::result::Result<(), String> {
        let mut names: Vec<&str> = self.scopes.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err("duplicate scope".into());
        }
        for pack in self.scopes.iter().flat_map(|s| &s.packs) {
            let sorted = pack.dead.windows(2).all(|w| w[0] < w[1]);
            if !sorted || pack.dead.last().is_some_and(|&d| d >= pack.items) {
                return Err("invalid dead list".into());
            }
        }
        Ok(())
    }
}

/// Reads `dir/MANIFEST`; `Ok(None)` when there is none yet.
pub fn read(fs: &dyn Fs, dir: &Path) -> Result<Option<Manifest>> {
    read_raw(fs, dir)?.map(|bytes| Manifest::decode(&bytes)).transpose()
}

/// The bytes of `dir/MANIFEST`, undecoded; `Ok(None)` when there is none yet.
pub fn read_raw(fs: &dyn Fs, dir: &Path) -> Result<Option<Vec<u8>>> {
    let path = dir.join(MANIFEST_NAME);
    match fs.read_file(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Atomically replaces `dir/MANIFEST` (temp file + rename; fsyncs when `sync`).
pub fn commit(fs: &dyn Fs, dir: &Path, manifest: &Manifest, sync: bool) -> Result<()> {
    let bytes = manifest.encode()?;
    crate::engine::layout::write_into_place(fs, dir, MANIFEST_NAME, &[&bytes], sync)?;
    if sync {
        fs.sync_dir(dir).map_err(|e| Error::io("fsync", dir, e))?;
    }
    Ok(())
}
