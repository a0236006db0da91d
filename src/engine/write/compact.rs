//! Compaction's reading side: the live items of packs being rewritten, laid
//! out for new packs. A block whose values are all still live is copied as
//! stored (its hash checked, not decoded and encoded again); only blocks that
//! hold a dead item are decoded, and their live values encoded anew.

use std::sync::Arc;

use crate::engine::core::Core;
use crate::engine::error::{Error, Result};
use crate::engine::manifest::PackMeta;
use crate::engine::pack::reader::{PackView, Verify};
use crate::engine::pack::writer::{item_size, starts_new_pack, Compression, CopiedBlock};
use crate::engine::unsaved::stage::Staged;

/// A pack being compacted: its live items go into new packs.
pub struct Source {
    view: Arc<PackView>,
    dead: Vec<u32>,
    pub from_staged: bool,
    /// Per block, in order: how its live values reach the new packs.
    blocks: Vec<BlockUse>,
    /// Items whose values are empty (they lie in no block).
    empty: Vec<u32>,
}

enum BlockUse {
    /// No value live: not read at all.
    Skip,
    /// Every value live: the stored block is copied. Its items, in order.
    Copy(Vec<u32>),
    /// Some value dead: the live ones are re-encoded from the raw block,
    /// read in place when it is stored raw, else decoded here.
    Split(Vec<u32>, Option<Vec<u8>>),
}

/// Opens a committed pack for compaction, every block checked, and decodes
/// the blocks that hold both live and dead items.
pub fn open_committed(store: &Core, meta: PackMeta, compression: Compression) -> Result<Source> {
    let view = Arc::new(store.open_pack(&meta, Verify::Full)?);
    Source::new(view, meta, false, compression)
}

/// The same for a pack this batch staged.
pub fn open_staged(staged: &Staged, meta: PackMeta, compression: Compression) -> Result<Source> {
    Source::new(staged.view()?, meta, true, compression)
}

impl Source {
    fn new(view: Arc<PackView>, meta: PackMeta, from_staged: bool, compression: Compression) -> Result<Source> {
        let (by_block, empty) = items_by_block(&view, &meta.file_name())?;
        let dead = meta.dead;
        let mut blocks = Vec::with_capacity(by_block.len());
        for (b, items) in by_block.into_iter().enumerate() {
            let raw = view.block_raw_range(b);
            let (stored, _) = view.stored_block(b)?;
            let live = items.iter().filter(|i| dead.binary_search(i).is_err()).count();
            let tiled = items.iter().map(|&i| view.value_len(i as usize)).sum::<u64>() == raw.len() as u64;
            // A block is copied as stored when it is raw, or compressed with
            // the codec new packs get (a pack has one codec, and compaction
            // rewrites with the current one). Under `'none'` only raw blocks
            // are: a 'none' store's packs stay servable in place.
            let kind_fits = stored.len() == raw.len() || compression.codec() == Some(view.codec());
            blocks.push(if live == 0 {
                BlockUse::Skip
            } else if live == items.len() && tiled && kind_fits {
                BlockUse::Copy(items)
            } else if stored.len() == raw.len() {
                BlockUse::Split(items, None)
            } else {
                BlockUse::Split(items, Some(view.block_bytes(b)?.into_owned()))
            });
        }
        Ok(Source { view, dead, from_staged, blocks, empty })
    }

    fn is_live(&self, item: u32) -> bool {
        self.dead.binary_search(&item).is_err()
    }
}

/// Each item's block (values in order, each inside one block), and the
/// items with empty values.
fn items_by_block(view: &PackView, name: &str) -> Result<(Vec<Vec<u32>>, Vec<u32>)> {
    let count = view.block_count();
    let mut by_block = vec![Vec::new(); count];
    let mut empty = Vec::new();
    let mut b = 0;
    for i in 0..view.len() {
        let value = view.value_range(i);
        if value.is_empty() {
            empty.push(i as u32);
            continue;
        }
        while b < count && view.block_raw_range(b).end <= value.start {
            b += 1;
        }
        if b == count || value.start < view.block_raw_range(b).start || value.end > view.block_raw_range(b).end {
            return Err(Error::corrupted(format!("pack {name}: value {i} lies outside its block")));
        }
        by_block[b].push(i as u32);
    }
    Ok((by_block, empty))
}

/// The items of one new pack: copied blocks, then items encoded anew.
#[derive(Default)]
pub struct NewPack<'a> {
    pub copied: Vec<CopiedBlock<'a>>,
    pub loose: Vec<(&'a [u8], &'a [u8])>,
    size: u64,
}

impl<'a> NewPack<'a> {
    fn is_empty(&self) -> bool {
        self.copied.is_empty() && self.loose.is_empty()
    }
}

/// Splits the live items of `sources` into chunks of about `pack_size` raw
/// bytes (keys and values).
pub fn new_packs(sources: &[Source], pack_size: u64) -> Result<Vec<NewPack<'_>>> {
    let mut out = NewPacks { done: Vec::new(), current: NewPack::default(), pack_size };
    for source in sources {
        let view = &*source.view;
        for (b, block) in source.blocks.iter().enumerate() {
            match block {
                BlockUse::Skip => {}
                BlockUse::Copy(items) => {
                    let (stored, hash) = view.stored_block(b)?;
                    let items: Vec<(&[u8], u64)> =
                        items.iter().map(|&i| (view.key(i as usize), view.value_len(i as usize))).collect();
                    let size = items.iter().map(|(k, len)| k.len() as u64 + len).sum();
                    out.room_for(size);
                    out.current.copied.push(CopiedBlock { stored, hash, items });
                }
                BlockUse::Split(items, decoded) => {
                    let bytes = match decoded {
                        Some(bytes) => &bytes[..],
                        None => view.stored_block(b)?.0,
                    };
                    let start = view.block_raw_range(b).start;
                    for &i in items.iter().filter(|&&i| source.is_live(i)) {
                        let range = view.value_range(i as usize);
                        out.loose(view.key(i as usize), &bytes[range.start - start..range.end - start]);
                    }
                }
            }
        }
        for &i in source.empty.iter().filter(|&&i| source.is_live(i)) {
            out.loose(view.key(i as usize), &[]);
        }
    }
    Ok(out.finish())
}

struct NewPacks<'a> {
    done: Vec<NewPack<'a>>,
    current: NewPack<'a>,
    pack_size: u64,
}

impl<'a> NewPacks<'a> {
    /// Starts a new chunk unless `size` more bytes fit in the current one.
    fn room_for(&mut self, size: u64) {
        if starts_new_pack(self.current.size, self.current.is_empty(), size, self.pack_size) {
            self.done.push(std::mem::take(&mut self.current));
        }
        self.current.size += size;
    }

    fn loose(&mut self, key: &'a [u8], value: &'a [u8]) {
        self.room_for(item_size(key, value));
        self.current.loose.push((key, value));
    }

    fn finish(mut self) -> Vec<NewPack<'a>> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}
