//! Loading scopes in two steps. `prepare_load` maps every pack the requested
//! scopes need, re-reading the manifest if a concurrent save deleted one.
//! `decode` verifies and decodes the packs on all cores and turns each into a
//! [`PairBuf`] — one buffer holding the pack's live pairs — handing it to a
//! sink as soon as it is ready, so a consumer can convert while others decode.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use super::error::{Error, Result};
use super::fs::Blob;
use super::keyhash::KeyBytes;
use super::manifest::{Manifest, PackMeta};
use super::par;
use super::reader::Verify;
use super::store::{validate_scope, view_of, Store, STALE_RETRIES};
use super::updates::{KeySet, Overlay};

/// One block of anonymous memory that all compressed packs of a load decode
/// into, each into its own slot. One allocation per load, not per pack: a
/// JS engine counts each external buffer toward its GC heuristics, and 90
/// buffers of 4 MiB trigger far more collections than one of 360 MiB.
///
/// Sound by construction: the region hands out no slice of itself. A worker
/// writes its slot through `slot_mut` and only then makes the [`Slot`] that
/// reads it; `Slot`'s fields are private, so safe code cannot name a slot
/// that is still being written.
pub struct Region {
    map: memmap2::MmapMut,
    /// Start of the mapping, taken once: slots are written through raw
    /// pointers so no two workers ever hold overlapping references.
    ptr: *mut u8,
    len: usize,
}

// SAFETY: workers write disjoint slots (`slot_mut`), each before the `Slot`
// that reads it exists; Rust code reads the region only through `Slot`s.
unsafe impl Sync for Region {}
// SAFETY: as for `Sync`; the mapping itself may be unmapped on any thread.
unsafe impl Send for Region {}

impl Region {
    fn new(len: usize) -> Option<Arc<Region>> {
        let mut map = memmap2::MmapOptions::new().len(len.max(1)).map_anon().ok()?;
        let ptr = map.as_mut_ptr();
        Some(Arc::new(Region { map, ptr, len }))
    }

    /// Start and length of the whole region, for handing its memory to
    /// another owner (a JS Buffer) without forming a reference to bytes that
    /// workers may still be writing.
    pub fn raw_parts(&self) -> (*const u8, usize) {
        (self.ptr, self.len)
    }

    /// # Safety
    /// Each slot is written by one worker only, and no `Slot` over it exists
    /// until that worker is done with the returned slice.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slot_mut(&self, range: Range<usize>) -> &mut [u8] {
        assert!(range.start <= range.end && range.end <= self.len, "slot inside the region");
        // Fault the slot in with one call rather than page by page.
        #[cfg(target_os = "linux")]
        let _ = self.map.advise_range(memmap2::Advice::PopulateWrite, range.start, range.len());
        // SAFETY: in bounds (asserted); exclusive as the caller promises.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
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
        // SAFETY: the slot lies in the live mapping (checked by `slot_mut`,
        // the only way a `Slot` is made) and was fully written before this
        // `Slot` was made; no Rust code writes it afterwards.
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

/// Packs mapped as one group: the group, and where each (scope, pack) of
/// the manifest lies in it.
type Grouped = (Blob, std::collections::HashMap<(usize, usize), Range<usize>>);

/// Part of a larger blob: one pack of a mapped group.
#[derive(Clone)]
struct SubBlob {
    whole: Blob,
    range: Range<usize>,
}

impl AsRef<[u8]> for SubBlob {
    fn as_ref(&self) -> &[u8] {
        &(*self.whole).as_ref()[self.range.clone()]
    }
}

/// Where a pack's bytes are mapped: on their own, or in a mapped group.
enum PackBytes {
    Alone(Blob),
    InGroup(SubBlob),
}

impl PackBytes {
    /// The pack's bytes alone (for a grouped pack, its part of the group).
    fn blob(&self) -> Blob {
        match self {
            PackBytes::Alone(blob) => blob.clone(),
            PackBytes::InGroup(sub) => Arc::new(sub.clone()),
        }
    }
}

struct Job {
    scope: usize,
    seq: usize,
    pack: (usize, usize),
    bytes: PackBytes,
    /// Where this pack decodes to in the region: its raw size (keys and
    /// values) from the checksummed manifest, never from the pack itself.
    slot: Range<usize>,
}

/// Everything a load needs, mapped and ready to decode.
pub struct LoadPlan {
    manifest: Arc<Manifest>,
    region: Option<Arc<Region>>,
    jobs: Vec<Job>,
    shadowed: Vec<KeySet>,
    extras: Vec<Option<PairBuf>>,
    failed: Vec<(usize, Error)>,
    packs_per_scope: Vec<usize>,
}

impl LoadPlan {
    pub fn scope_count(&self) -> usize {
        self.shadowed.len()
    }

    /// Parts scope `i` will deliver when nothing fails.
    pub fn parts_of(&self, scope: usize) -> usize {
        self.packs_per_scope[scope] + usize::from(self.extras[scope].is_some())
    }

    fn meta(&self, job: &Job) -> &PackMeta {
        &self.manifest.scopes[job.pack.0].packs[job.pack.1]
    }
}

impl Store {
    pub fn prepare_load(&self, scopes: &[String]) -> Result<LoadPlan> {
        self.check_open()?;
        for s in scopes {
            validate_scope(s)?;
        }
        let Unsaved { cleared, shadowed, extras } = self.unsaved(scopes)?;
        let mut manifest = None;
        let (jobs, failed) = self.with_current_manifest(|current, final_attempt| {
            manifest = Some(current.clone());
            Ok(self.map_packs(current, scopes, &cleared, final_attempt))
                .and_then(|mapped| mapped.ok_or_else(|| Error::io("open", "a pack", std::io::ErrorKind::NotFound.into())))
        })?;
        let manifest = manifest.expect("read at least once");
        self.touch_once();
        let packs_per_scope = (0..scopes.len()).map(|s| jobs.iter().filter(|j| j.scope == s).count()).collect();
        let region = jobs.last().and_then(|j| Region::new(j.slot.end));
        Ok(LoadPlan { manifest, region, jobs, shadowed, extras, failed, packs_per_scope })
    }

    /// Each scope's unsaved state, read consistently: a `set` racing the
    /// read of a value it replaced makes the whole snapshot be taken again.
    fn unsaved(&self, scopes: &[String]) -> Result<Unsaved> {
        'snapshot: for _ in 0..STALE_RETRIES {
            let overlays = self.overlays(scopes);
            let mut unsaved = Unsaved { cleared: overlays.iter().map(|o| o.cleared).collect(), ..Unsaved::default() };
            for overlay in overlays {
                let Some((keys, extra)) = split_overlay(overlay)? else { continue 'snapshot };
                unsaved.shadowed.push(keys);
                unsaved.extras.push(extra);
            }
            return Ok(unsaved);
        }
        Err(Error::Internal("unsaved values kept changing while a load read them".into()))
    }

    /// Maps the packs of every scope; `None` when one is missing and the
    /// manifest should be re-read (a concurrent save deleted it).
    fn map_packs(
        &self,
        manifest: &Manifest,
        scopes: &[String],
        cleared: &[bool],
        final_attempt: bool,
    ) -> Option<(Vec<Job>, Vec<(usize, Error)>)> {
        let wanted: Vec<(usize, usize)> = scopes
            .iter()
            .zip(cleared)
            .enumerate()
            .filter_map(|(si, (scope, &cleared))| {
                let mi = manifest.scopes.iter().position(|s| &s.name == scope).filter(|_| !cleared)?;
                Some((si, mi))
            })
            .collect();
        let grouped = self.map_raw_packs_together(manifest, &wanted);
        let mut jobs = Vec::new();
        let mut failed = Vec::new();
        for (si, mi) in wanted {
            for (pi, meta) in manifest.scopes[mi].packs.iter().enumerate() {
                let path = self.dir.join(meta.file_name());
                let in_group = grouped.as_ref().and_then(|(whole, at)| {
                    at.get(&(mi, pi)).map(|range| SubBlob { whole: whole.clone(), range: range.clone() })
                });
                let mapped = match in_group {
                    Some(sub) => Ok(PackBytes::InGroup(sub)),
                    None => self.fs.map_file_whole(&path).map(PackBytes::Alone),
                };
                match mapped {
                    Ok(bytes) => {
                        let start = jobs.last().map_or(0, |j: &Job| j.slot.end);
                        let slot = start..start + meta.raw_bytes as usize;
                        jobs.push(Job { scope: si, seq: pi, pack: (mi, pi), bytes, slot });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && !final_attempt => return None,
                    Err(e) => {
                        let e = Error::io("open", &path, e);
                        self.note_damage(meta, &e, final_attempt);
                        failed.push((si, super::store::missing_as_corrupt(e)));
                        break;
                    }
                }
            }
        }
        Some((jobs, failed))
    }

    /// Packs that look stored raw (file at least their raw size) are served
    /// from their mapping: mapped back to back, they become one buffer for
    /// JS rather than one external buffer each (a JS engine collects every
    /// time external memory grows by a few tens of MiB). `None` when there
    /// are fewer than two or the file system cannot; any failure leaves the
    /// packs to be mapped one by one, with the usual error handling.
    fn map_raw_packs_together(&self, manifest: &Manifest, wanted: &[(usize, usize)]) -> Option<Grouped> {
        let raw: Vec<(usize, usize)> = wanted
            .iter()
            .flat_map(|&(_, mi)| manifest.scopes[mi].packs.iter().enumerate().map(move |(pi, m)| (mi, pi, m)))
            .filter(|(_, _, m)| m.file_len >= m.raw_bytes && m.file_len > 0)
            .map(|(mi, pi, _)| (mi, pi))
            .collect();
        if raw.len() < 2 {
            return None;
        }
        let paths: Vec<std::path::PathBuf> =
            raw.iter().map(|&(mi, pi)| self.dir.join(manifest.scopes[mi].packs[pi].file_name())).collect();
        let group = self.fs.map_files_together(&paths).ok()??;
        Some((group.blob, raw.into_iter().zip(group.places).collect()))
    }

    /// Verifies and decodes every pack on all cores, calling `sink` (from
    /// worker threads) with each part as soon as it is ready.
    pub fn decode(&self, mut plan: LoadPlan, sink: impl Fn(LoadEvent) + Sync) {
        let mut failed = HashSet::new();
        for (scope, error) in std::mem::take(&mut plan.failed) {
            failed.insert(scope);
            sink(LoadEvent::Failed { scope, error });
        }
        // Jobs move into the workers: a compressed pack's mapping is released
        // as soon as it is decoded, not when the whole load ends.
        let jobs: Vec<Job> =
            std::mem::take(&mut plan.jobs).into_iter().filter(|j| !failed.contains(&j.scope)).collect();
        let extras = std::mem::take(&mut plan.extras);
        let plan = &plan;
        par::map(jobs, |job| {
            let meta = plan.meta(&job);
            let target = plan.region.as_ref().map(|r| (r, job.slot.clone()));
            let event = match self.pack_pairs(job.bytes, meta, &plan.shadowed[job.scope], target) {
                Ok(part) => LoadEvent::Part { scope: job.scope, seq: job.seq, part },
                Err(error) => {
                    self.note_damage(meta, &error, true);
                    LoadEvent::Failed { scope: job.scope, error }
                }
            };
            sink(event);
        });
        for (scope, extra) in extras.into_iter().enumerate() {
            if let Some(part) = extra {
                sink(LoadEvent::Part { scope, seq: plan.packs_per_scope[scope], part });
            }
        }
    }

    /// One pack's live pairs: served from the mapping when it is stored raw,
    /// else decoded into one buffer (values, then keys) so the mapping can go.
    fn pack_pairs(
        &self,
        pack: PackBytes,
        meta: &PackMeta,
        shadowed: &KeySet,
        region: Option<(&Arc<Region>, Range<usize>)>,
    ) -> Result<PairBuf> {
        // Blocks are checked as they are decoded (while in cache), or all
        // at once before a raw body is served in place.
        let view = view_of(pack.blob(), meta, Verify::OnRead)?;
        let mut dead = meta.dead.iter().peekable();
        let live: Vec<usize> = (0..view.len())
            .filter(|&i| dead.next_if(|&&d| d as usize == i).is_none())
            .filter(|&i| shadowed.is_empty() || !shadowed.contains(KeyBytes::new(view.key(i))))
            .collect();
        if view.is_raw_in_place() {
            view.check_body()?;
            // Offsets into the pack's mapping, or into its group's.
            let (bytes, base) = match pack {
                PackBytes::Alone(blob) => (Bytes::Mapped(blob), 0),
                PackBytes::InGroup(sub) => (Bytes::Group(sub.whole), sub.range.start),
            };
            let pairs = live
                .iter()
                .map(|&i| {
                    let k = view.key_range_in_blob(i).expect("index read in place");
                    let v = view.value_range_in_blob(i);
                    [base + k.start, base + k.end, base + v.start, base + v.end]
                })
                .collect();
            return Ok(PairBuf { bytes, pairs });
        }
        let keys_len: usize = live.iter().map(|&i| view.key(i).len()).sum();
        let body = view.body_raw_len();
        let need = body + keys_len;
        let (slot, base) = match region {
            // The slot is the pack's raw size per the manifest; a pack that
            // disagrees (a bug or damage the checksum missed) gets its own buffer.
            Some((r, slot)) if slot.len() >= need => (Some(r.clone()), slot.start),
            _ => (None, 0),
        };
        let mut owned = Vec::new();
        let bytes = match &slot {
            // SAFETY: this job's slot, written by this worker only; its
            // `Slot` is made below, once the writes are done.
            Some(r) => unsafe { r.slot_mut(base..base + need) },
            None => {
                owned = vec![0u8; need];
                &mut owned[..]
            }
        };
        view.decode_into(&mut bytes[..body])?;
        let mut at = body;
        let mut pairs = Vec::with_capacity(live.len());
        for &i in &live {
            let key = view.key(i);
            bytes[at..at + key.len()].copy_from_slice(key);
            let v: Range<usize> = view.value_range(i);
            pairs.push([base + at, base + at + key.len(), base + v.start, base + v.end]);
            at += key.len();
        }
        let out = match slot {
            Some(region) => Bytes::Region(Slot { region, range: base..base + need }),
            None => Bytes::Owned(owned),
        };
        Ok(PairBuf { bytes: out, pairs })
    }

    pub fn load(&self, scope: &str) -> Result<LoadedScope> {
        self.load_many(&[scope.to_owned()])?.pop().expect("one result per scope")
    }

    /// Loads every scope (decoding all their packs in parallel). The outer
    /// `Err` is for the whole call; each scope has its own result.
    pub fn load_many(&self, scopes: &[String]) -> Result<Vec<Result<LoadedScope>>> {
        let plan = self.prepare_load(scopes)?;
        let slots: Vec<std::sync::Mutex<Result<Vec<Option<PairBuf>>>>> = (0..plan.scope_count())
            .map(|s| std::sync::Mutex::new(Ok((0..plan.parts_of(s)).map(|_| None).collect())))
            .collect();
        self.decode(plan, |event| match event {
            LoadEvent::Part { scope, seq, part } => {
                if let Ok(parts) = &mut *slots[scope].lock().unwrap() {
                    parts[seq] = Some(part);
                }
            }
            LoadEvent::Failed { scope, error } => {
                let mut slot = slots[scope].lock().unwrap();
                if slot.is_ok() {
                    *slot = Err(error);
                }
            }
        });
        Ok(slots
            .into_iter()
            .map(|m| m.into_inner().unwrap().map(|parts| LoadedScope { parts: parts.into_iter().flatten().collect() }))
            .collect())
    }
}

/// What unsaved state does to the scopes of a load, per scope.
#[derive(Default)]
struct Unsaved {
    /// Committed contents are dropped (a reset is in flight).
    cleared: Vec<bool>,
    /// Keys whose committed copies are hidden.
    shadowed: Vec<KeySet>,
    /// Unsaved sets, as one part.
    extras: Vec<Option<PairBuf>>,
}

/// Keys the overlay hides in committed packs, and its sets as one part;
/// `None` when a value was superseded while being read.
fn split_overlay(overlay: Overlay) -> Result<Option<(KeySet, Option<PairBuf>)>> {
    let sets = || overlay.entries.iter().filter_map(|(k, v)| v.as_ref().map(|v| (&**k, v)));
    let extra = match sets().next() {
        None => None,
        Some(_) => match super::stage::collect(sets())? {
            Some(part) => Some(part),
            None => return Ok(None),
        },
    };
    Ok(Some((overlay.entries.into_keys().collect(), extra)))
}
