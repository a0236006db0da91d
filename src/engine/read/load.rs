//! Loading scopes in two steps. `prepare_load` maps every pack the requested
//! scopes need, re-reading the manifest if a concurrent save deleted one.
//! `decode` verifies and decodes the packs on all cores and turns each into a
//! [`PairBuf`] — one buffer holding the pack's live pairs — handing it to a
//! sink as soon as it is ready, so a consumer can convert while others decode.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use crate::engine::core::{missing_as_corrupt, view_of, Core};
use crate::engine::error::{Error, Result};
use crate::engine::fs::Blob;
use crate::engine::keyhash::KeyBytes;
use crate::engine::manifest::{Manifest, PackMeta};
use crate::engine::pack::reader::Verify;
use crate::engine::pairs::{Bytes, LoadEvent, LoadedScope, PairBuf, Region};
use crate::engine::par;
use crate::engine::unsaved::updates::KeySet;
use crate::engine::unsaved::Unsaved;

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

struct DecodeJob {
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
    jobs: Vec<DecodeJob>,
    shadowed: Vec<KeySet>,
    extras: Vec<Option<PairBuf>>,
    failed: Vec<(usize, Error)>,
    packs_per_scope: Vec<usize>,
}

/// What a load read and handed out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadStats {
    pub scopes: usize,
    /// Pairs handed out (committed and unsaved).
    pub items: u64,
    /// Their keys and values, in bytes.
    pub raw_bytes: u64,
    /// Packs read, and their bytes on disk.
    pub packs: usize,
    pub read_bytes: u64,
    /// From the manifest read to the last part decoded (not the JS side).
    pub ms: f64,
    /// Threads the decoding could use (cores shared by concurrent loads).
    pub threads: usize,
}

impl LoadPlan {
    /// Packs to read and their bytes on disk.
    pub fn reads(&self) -> (usize, u64) {
        (self.jobs.len(), self.jobs.iter().map(|j| self.meta(j).file_len).sum())
    }

    pub fn scope_count(&self) -> usize {
        self.shadowed.len()
    }

    /// Parts scope `i` will deliver when nothing fails.
    pub fn parts_of(&self, scope: usize) -> usize {
        self.packs_per_scope[scope] + usize::from(self.extras[scope].is_some())
    }

    fn meta(&self, job: &DecodeJob) -> &PackMeta {
        &self.manifest.scopes[job.pack.0].packs[job.pack.1]
    }
}

impl Core {
    /// Maps every pack of `scopes` in the current manifest, with `unsaved`
    /// (per scope: cleared, shadowed keys, unsaved sets) to apply.
    pub(crate) fn prepare_load(&self, scopes: &[String], unsaved: Unsaved) -> Result<LoadPlan> {
        let Unsaved { cleared, shadowed, extras } = unsaved;
        let mut manifest = None;
        let (jobs, failed) = self.with_current_manifest(|current, final_attempt| {
            manifest = Some(current.clone());
            Ok(self.map_packs(current, scopes, &cleared, final_attempt)).and_then(|mapped| {
                mapped.ok_or_else(|| Error::io("open", "a pack", std::io::ErrorKind::NotFound.into()))
            })
        })?;
        let manifest = manifest.expect("read at least once");
        self.touch_once();
        let packs_per_scope = (0..scopes.len()).map(|s| jobs.iter().filter(|j| j.scope == s).count()).collect();
        let region = jobs.last().and_then(|j| Region::new(j.slot.end));
        Ok(LoadPlan { manifest, region, jobs, shadowed, extras, failed, packs_per_scope })
    }

    /// Maps the packs of every scope; `None` when one is missing and the
    /// manifest should be re-read (a concurrent save deleted it).
    fn map_packs(
        &self,
        manifest: &Manifest,
        scopes: &[String],
        cleared: &[bool],
        final_attempt: bool,
    ) -> Option<(Vec<DecodeJob>, Vec<(usize, Error)>)> {
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
                        let start = jobs.last().map_or(0, |j: &DecodeJob| j.slot.end);
                        let slot = start..start + meta.raw_bytes as usize;
                        jobs.push(DecodeJob { scope: si, seq: pi, pack: (mi, pi), bytes, slot });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && !final_attempt => return None,
                    Err(e) => {
                        let e = Error::io("open", &path, e);
                        self.note_damage(meta, &e, final_attempt);
                        failed.push((si, missing_as_corrupt(e)));
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
        let jobs: Vec<DecodeJob> =
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
        let (region, base) = match region {
            // The slot is the pack's raw size per the manifest; a pack that
            // disagrees (a bug or damage the checksum missed) gets its own buffer.
            Some((r, slot)) if slot.len() >= need => (Some(r), slot.start),
            _ => (None, 0),
        };
        let mut pairs = Vec::with_capacity(live.len());
        // Values (decoded in place), then the live keys.
        let mut write = |bytes: &mut [u8]| -> Result<()> {
            view.decode_into(&mut bytes[..body])?;
            let mut at = body;
            for &i in &live {
                let key = view.key(i);
                bytes[at..at + key.len()].copy_from_slice(key);
                let v: Range<usize> = view.value_range(i);
                pairs.push([base + at, base + at + key.len(), base + v.start, base + v.end]);
                at += key.len();
            }
            Ok(())
        };
        let out = match region {
            Some(r) => Bytes::Region(r.fill(base..base + need, write)?),
            None => {
                let mut owned = vec![0u8; need];
                write(&mut owned)?;
                Bytes::Owned(owned)
            }
        };
        Ok(PairBuf { bytes: out, pairs })
    }
}

/// Decodes a prepared load and gathers each scope's parts (for callers that
/// want the whole result at once).
pub fn collect(core: &Core, plan: LoadPlan) -> Vec<Result<LoadedScope>> {
    let slots: Vec<std::sync::Mutex<Result<Vec<Option<PairBuf>>>>> = (0..plan.scope_count())
        .map(|s| std::sync::Mutex::new(Ok((0..plan.parts_of(s)).map(|_| None).collect())))
        .collect();
    core.decode(plan, |event| match event {
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
    slots
        .into_iter()
        .map(|m| m.into_inner().unwrap().map(|parts| LoadedScope { parts: parts.into_iter().flatten().collect() }))
        .collect()
}
