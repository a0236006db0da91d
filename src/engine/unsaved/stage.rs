//! Values of unsaved sets, staged for the next save. `set` appends each pair
//! to its scope's open [`Chunk`]: one buffer of about `pack_size`, taken from
//! a small pool of reused buffers, so a build's sets copy into memory that is
//! already mapped instead of allocating (and faulting in) memory per value.
//! A full chunk is encoded into a pack on a background thread while later
//! sets arrive, written to a stage file of this store (see [`Spill`]), and
//! its buffers go back to the pool; `save` then links the staged files into
//! place instead of writing everything at the end.
//!
//! Invariant: a chunk's pack never holds a key twice. While a chunk is still
//! raw, an item whose key is set again or removed is marked superseded and
//! left out of the pack; items superseded after encoding are marked dead in
//! the manifest by the save, like any overwritten item.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use crate::engine::error::{Error, Result};
use crate::engine::manifest::PackMeta;
use crate::engine::pack::reader::{Body, PackView, Verify};
use crate::engine::pack::writer::{
    encode_pack_in, item_size, raw_pack_over, starts_new_pack, Compression, EncodedPack,
};
use crate::engine::pairs::{Bytes, PairBuf};

use super::pool::{recycle, take_buffer};
pub use super::spill::Spill;

/// What a chunk becomes a pack with.
#[derive(Clone)]
pub struct StageConfig {
    pub compression: Compression,
    /// Raw bytes (keys + values) at which a chunk is sealed.
    pub pack_size: u64,
    /// Recorded in the pack header (informational).
    pub generation: u64,
    /// Where packs encoded in the background go; `None`: they stay in memory.
    pub spill: Option<Arc<Spill>>,
}

/// One staged value: item `item` of `chunk`.
#[derive(Clone)]
pub struct Value {
    pub chunk: Arc<Chunk>,
    pub item: u32,
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Value({:p}#{})", Arc::as_ptr(&self.chunk), self.item)
    }
}

impl Value {
    /// A copy of the value's bytes; `None` when the key has been set again
    /// or removed since this `Value` was taken from the pending map and its
    /// chunk was encoded without it (a reader racing a `set`: read again).
    pub fn to_vec(&self) -> Result<Option<Vec<u8>>> {
        self.chunk.read_one(self.item)
    }

    /// Marks this value as replaced before its chunk is encoded.
    pub(crate) fn supersede(&self) {
        self.chunk.supersede(self.item);
    }
}

/// A chunk's pairs: values back to back in one pooled buffer (so the
/// encoder compresses them in place, block by block), keys in another.
struct Raw {
    values: Vec<u8>,
    keys: Vec<u8>,
    /// Per item: end of its key in `keys`, end of its value in `values`.
    ends: Vec<(usize, usize)>,
    superseded: Vec<bool>,
}

impl Raw {
    fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1].0 };
        &self.keys[start..self.ends[i].0]
    }

    fn value(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1].1 };
        &self.values[start..self.ends[i].1]
    }

    fn size(&self) -> u64 {
        (self.keys.len() + self.values.len()) as u64
    }
}

/// A chunk encoded into a pack, not yet committed.
pub struct Staged {
    /// The pack's manifest entry, every item live.
    pub meta: PackMeta,
    place: Place,
    /// Index in the pack of each chunk item; `None` for superseded ones.
    pub slot: Vec<Option<u32>>,
    /// Raw size of each pack item.
    pub sizes: Vec<u64>,
    view: OnceLock<Arc<PackView>>,
}

enum Place {
    Memory(EncodedPack),
    /// A stage file (removed when the `Staged` is dropped).
    File(PathBuf, Arc<Spill>),
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Place::File(path, spill) = &self.place {
            spill.discard(path);
        }
    }
}

impl Staged {
    /// The encoded pack when it is held in memory.
    pub fn in_memory(&self) -> Option<&EncodedPack> {
        match &self.place {
            Place::Memory(pack) => Some(pack),
            Place::File(..) => None,
        }
    }

    /// The stage file holding the pack, when it was spilled.
    pub fn file(&self) -> Option<&Path> {
        match &self.place {
            Place::Memory(_) => None,
            Place::File(path, _) => Some(path),
        }
    }

    /// Where a chunk item landed in the pack.
    pub fn pack_item(&self, item: u32) -> Result<u32> {
        self.slot[item as usize].ok_or_else(|| Error::Internal("read of a superseded staged value".into()))
    }

    /// A reader over the pack (built on first use: only reads of unsaved
    /// values and compaction of a staged pack need one).
    pub fn view(&self) -> Result<Arc<PackView>> {
        if let Some(view) = self.view.get() {
            return Ok(view.clone());
        }
        let view = match &self.place {
            Place::Memory(pack) => PackView::open(Arc::new(pack.to_bytes()), &self.meta.id, Verify::IndexOnly)
                .map_err(|e| Error::Internal(format!("a staged pack does not read back: {e}")))?,
            // A stage file could have been damaged or deleted on disk: each
            // block read is checked.
            Place::File(path, spill) => {
                let blob = spill.fs.map_file(path).map_err(|e| Error::io("open stage file", path, e))?;
                PackView::open(blob, &self.meta.id, Verify::OnRead)?
            }
        };
        Ok(self.view.get_or_init(|| Arc::new(view)).clone())
    }
}

enum Push {
    Added {
        item: u32,
        full: bool,
    },
    /// Not added: the chunk is full; seal it and start another.
    Full,
    /// Not added: the chunk was sealed already.
    Sealed,
}

enum State {
    Raw(Raw),
    Encoding,
    Encoded(Arc<Staged>),
}

pub struct Chunk {
    scope: String,
    config: StageConfig,
    state: Mutex<State>,
    done: Condvar,
}

impl Chunk {
    fn new(scope: &str, config: StageConfig) -> Arc<Chunk> {
        let values = take_buffer();
        let raw = Raw { values, keys: Vec::new(), ends: Vec::new(), superseded: Vec::new() };
        Arc::new(Chunk { scope: scope.to_owned(), config, state: Mutex::new(State::Raw(raw)), done: Condvar::new() })
    }

    /// Appends a pair (the value given as parts, stored back to back)
    /// unless that would take a non-empty chunk past `pack_size` (the same
    /// split a save makes) or the chunk is sealed.
    fn push(&self, key: &[u8], value: &[&[u8]]) -> Push {
        let mut state = self.state.lock().unwrap();
        let State::Raw(raw) = &mut *state else {
            return Push::Sealed;
        };
        let size = key.len() as u64 + parts_len(value);
        if starts_new_pack(raw.size(), raw.ends.is_empty(), size, self.config.pack_size) {
            return Push::Full;
        }
        let Ok(item) = u32::try_from(raw.ends.len()) else { return Push::Full };
        crate::engine::memory::reserve(&mut raw.keys, key.len());
        raw.keys.extend_from_slice(key);
        crate::engine::memory::reserve(&mut raw.values, parts_len(value) as usize);
        for part in value {
            raw.values.extend_from_slice(part);
        }
        raw.ends.push((raw.keys.len(), raw.values.len()));
        raw.superseded.push(false);
        Push::Added { item, full: raw.size() >= self.config.pack_size }
    }

    fn supersede(&self, item: u32) {
        if let State::Raw(raw) = &mut *self.state.lock().unwrap() {
            raw.superseded[item as usize] = true;
        }
    }

    /// The encoded pack, encoding it on this thread if nobody has started
    /// (kept in memory: the caller is about to use it).
    pub fn encoded(&self) -> Result<Arc<Staged>> {
        self.encoded_as(false)
    }

    /// Encodes the chunk ahead of its save and, when the store spills,
    /// moves the pack to a stage file.
    pub(super) fn encode_ahead(&self) {
        // An error is kept in the chunk and reported by the save.
        drop(self.encoded_as(true));
    }

    fn encoded_as(&self, spill: bool) -> Result<Arc<Staged>> {
        let mut state = self.state.lock().unwrap();
        loop {
            match &*state {
                State::Encoded(staged) => return Ok(staged.clone()),
                State::Encoding => state = self.done.wait(state).unwrap(),
                State::Raw(_) => break,
            }
        }
        let State::Raw(raw) = std::mem::replace(&mut *state, State::Encoding) else { unreachable!() };
        drop(state);
        let mut raw = raw;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.encode(&mut raw, spill)))
            .unwrap_or_else(|p| Err(Error::Internal(crate::engine::error::panic_message(&p))));
        let mut state = self.state.lock().unwrap();
        let spent = match &result {
            Ok(staged) => {
                *state = State::Encoded(staged.clone());
                Some(raw.values)
            }
            // The values stay readable, and the next save tries again.
            Err(_) => {
                *state = State::Raw(raw);
                None
            }
        };
        self.done.notify_all();
        drop(state);
        if let Some(data) = spent {
            recycle(data);
        }
        result
    }

    fn encode(&self, raw: &mut Raw, spill: bool) -> Result<Arc<Staged>> {
        let mut slot = Vec::with_capacity(raw.ends.len());
        let mut items = Vec::with_capacity(raw.ends.len());
        let mut sizes = Vec::with_capacity(raw.ends.len());
        for i in 0..raw.ends.len() {
            if raw.superseded[i] {
                slot.push(None);
                continue;
            }
            slot.push(Some(items.len() as u32));
            items.push((raw.key(i), raw.value(i)));
            sizes.push(item_size(raw.key(i), raw.value(i)));
        }
        let spill = self.config.spill.as_ref().filter(|_| spill);
        let c = &self.config;
        // Uncompressed, with nothing left out, the values buffer is the body
        // as it stands: it goes to the stage file as is, then to the pool.
        let raw_pack = match (spill, c.compression) {
            (Some(_), Compression::None) => raw_pack_over(&self.scope, c.generation, &items, &raw.values)?,
            _ => None,
        };
        let pack = match raw_pack {
            Some(raw_pack) => raw_pack.with_body(std::mem::take(&mut raw.values)),
            None => {
                let reuse = if spill.is_some() { take_buffer() } else { Vec::new() };
                encode_pack_in(&self.scope, c.generation, &items, c.compression, &raw.values, reuse)?
            }
        };
        let meta = PackMeta::of(&pack);
        let place = match spill.and_then(|s| Some(Place::File(s.write(&pack)?, s.clone()))) {
            Some(file) => {
                recycle(pack.body);
                file
            }
            None => Place::Memory(pack),
        };
        Ok(Arc::new(Staged { meta, place, slot, sizes, view: OnceLock::new() }))
    }

    /// Calls `f(n, bytes)` with the value of each `items[n]`, reading the
    /// chunk once (decoding its pack once when already encoded). `false`
    /// when one of them was superseded and left out of the pack: the caller
    /// read its items from a map that has changed since (see [`Value::to_vec`]).
    pub fn read_many(&self, items: &[u32], mut f: impl FnMut(usize, &[u8])) -> Result<bool> {
        if let State::Raw(raw) = &*self.state.lock().unwrap() {
            for (n, &i) in items.iter().enumerate() {
                f(n, raw.value(i as usize));
            }
            return Ok(true);
        }
        let staged = self.encoded()?;
        let view = staged.view()?;
        let body: Body = view.decode_body()?;
        for (n, &i) in items.iter().enumerate() {
            let Some(at) = staged.slot[i as usize] else { return Ok(false) };
            f(n, &body.bytes()[view.value_range(at as usize)]);
        }
        Ok(true)
    }

    fn read_one(&self, item: u32) -> Result<Option<Vec<u8>>> {
        if let State::Raw(raw) = &*self.state.lock().unwrap() {
            return Ok(Some(raw.value(item as usize).to_vec()));
        }
        let staged = self.encoded()?;
        match staged.slot[item as usize] {
            Some(at) => staged.view()?.read_value(at as usize).map(Some),
            None => Ok(None),
        }
    }
}

fn parts_len(parts: &[&[u8]]) -> u64 {
    parts.iter().map(|p| p.len() as u64).sum()
}

/// Per-scope staging: the chunk new sets go into.
#[derive(Default)]
pub struct Stager {
    open: Option<Arc<Chunk>>,
}

impl Stager {
    /// Stages one pair and returns where it went, and a chunk this sealed
    /// (for [`encode_later`], once the caller holds no lock). `config` is
    /// asked only when a chunk is started.
    pub fn push(
        &mut self,
        scope: &str,
        key: &[u8],
        value: &[&[u8]],
        config: impl Fn() -> StageConfig,
    ) -> (Value, Option<Arc<Chunk>>) {
        let mut sealed = None;
        loop {
            let chunk = self.open.get_or_insert_with(|| Chunk::new(scope, config())).clone();
            match chunk.push(key, value) {
                Push::Added { item, full } => {
                    if full {
                        self.open = None;
                        sealed = Some(chunk.clone());
                    }
                    return (Value { chunk, item }, sealed);
                }
                Push::Full => {
                    self.open = None;
                    sealed = Some(chunk);
                }
                Push::Sealed => self.open = None,
            }
        }
    }
}

/// The values of `entries` as one buffer of pairs, reading each chunk once;
/// `None` when one was superseded since (as for [`Value::to_vec`]).
pub fn collect<'a>(entries: impl Iterator<Item = (&'a [u8], &'a Value)>) -> Result<Option<PairBuf>> {
    let mut bytes = Vec::new();
    let mut pairs = Vec::new();
    for group in group_by_chunk(entries.map(|(key, value)| (value, key))) {
        let complete = group.chunk.read_many(&group.items, |n, v| {
            let ks = bytes.len();
            bytes.extend_from_slice(group.tags[n]);
            let vs = bytes.len();
            bytes.extend_from_slice(v);
            pairs.push([ks, vs, vs, bytes.len()]);
        })?;
        if !complete {
            return Ok(None);
        }
    }
    Ok(Some(PairBuf { bytes: Bytes::Owned(bytes), pairs }))
}

/// Values of one chunk, each with a tag of the caller's.
pub struct ChunkGroup<T> {
    pub chunk: Arc<Chunk>,
    pub items: Vec<u32>,
    pub tags: Vec<T>,
}

/// Groups staged values by chunk, so each chunk is read or encoded once.
pub fn group_by_chunk<'a, T>(values: impl Iterator<Item = (&'a Value, T)>) -> Vec<ChunkGroup<T>> {
    let mut groups: HashMap<*const Chunk, ChunkGroup<T>> = HashMap::new();
    for (value, tag) in values {
        let group = groups.entry(Arc::as_ptr(&value.chunk)).or_insert_with(|| ChunkGroup {
            chunk: value.chunk.clone(),
            items: Vec::new(),
            tags: Vec::new(),
        });
        group.items.push(value.item);
        group.tags.push(tag);
    }
    groups.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pack_size: u64) -> StageConfig {
        StageConfig { compression: Compression::Zstd(1), pack_size, generation: 1, spill: None }
    }

    #[test]
    fn superseded_item_is_left_out_of_its_pack() {
        let mut stager = Stager::default();
        let (first, _) = stager.push("s", b"k", &[b"old value"], || config(1 << 20));
        first.supersede();
        let (second, _) = stager.push("s", b"k", &[b"new value"], || config(1 << 20));
        assert!(Arc::ptr_eq(&first.chunk, &second.chunk), "one open chunk");
        let staged = second.chunk.encoded().unwrap();
        assert_eq!(staged.meta.items, 1);
        assert_eq!(staged.slot, vec![None, Some(0)]);
        assert_eq!(second.to_vec().unwrap(), Some(b"new value".to_vec()));
        assert_eq!(first.to_vec().unwrap(), None, "a superseded value reads as stale, never as other bytes");
    }

    #[test]
    fn chunk_is_sealed_before_an_item_would_pass_pack_size() {
        let mut stager = Stager::default();
        let (a, sealed_a) = stager.push("s", b"a", &[&[1; 60]], || config(100));
        let (b, sealed_b) = stager.push("s", b"b", &[&[2; 60]], || config(100));
        assert!(sealed_a.is_none());
        let sealed_b = sealed_b.expect("the first chunk is handed back for encoding");
        assert!(Arc::ptr_eq(&sealed_b, &a.chunk) && !Arc::ptr_eq(&a.chunk, &b.chunk));
    }

    #[test]
    fn staged_values_read_the_same_before_and_after_encoding() {
        let mut stager = Stager::default();
        let values: Vec<(Vec<u8>, Vec<u8>)> = (0..300u32)
            .map(|i| (format!("key{i}").into_bytes(), format!("{i}-").repeat(i as usize % 40).into_bytes()))
            .collect();
        let staged: Vec<Value> = values.iter().map(|(k, v)| stager.push("s", k, &[v], || config(4096)).0).collect();
        let before: Vec<Vec<u8>> = staged.iter().map(|v| v.to_vec().unwrap().unwrap()).collect();
        for v in &staged {
            v.chunk.encoded().unwrap();
        }
        let after: Vec<Vec<u8>> = staged.iter().map(|v| v.to_vec().unwrap().unwrap()).collect();
        let expect: Vec<Vec<u8>> = values.iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(before, expect);
        assert_eq!(after, expect);
        let pairs = collect(values.iter().zip(&staged).map(|((k, _), v)| (k.as_slice(), v))).unwrap().unwrap();
        let mut got: Vec<(Vec<u8>, Vec<u8>)> =
            (0..pairs.pairs.len()).map(|i| (pairs.key(i).to_vec(), pairs.value(i).to_vec())).collect();
        got.sort();
        let mut sorted = values.clone();
        sorted.sort();
        assert_eq!(got, sorted);
    }
}
