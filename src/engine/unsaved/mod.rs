//! Updates before their save: the pending maps and in-flight batches
//! (`updates`), the staging chunks they point into (`stage`), encoded in
//! the background (`encoder`) into stage files (`spill`), their buffers
//! reused (`pool`).

pub mod encoder;
mod pool;
pub mod spill;
pub mod stage;
pub mod updates;

use crate::engine::error::{Error, Result};
use crate::engine::pairs::PairBuf;
use updates::{KeySet, Overlay};

/// Reads of unsaved values retried when a concurrent `set` replaced them
/// between looking a key up and reading its value.
pub(crate) const STALE_RETRIES: usize = 1000;

/// What unsaved state does to the scopes of a load, per scope.
#[derive(Default)]
pub struct Unsaved {
    /// Committed contents are dropped (a reset is in flight).
    pub cleared: Vec<bool>,
    /// Keys whose committed copies are hidden.
    pub shadowed: Vec<KeySet>,
    /// Unsaved sets, as one part.
    pub extras: Vec<Option<PairBuf>>,
}

/// Keys the overlay hides in committed packs, and its sets as one part;
/// `None` when a value was superseded while being read.
fn split_overlay(overlay: Overlay) -> Result<Option<(KeySet, Option<PairBuf>)>> {
    let sets = || overlay.entries.iter().filter_map(|(k, v)| v.as_ref().map(|v| (&**k, v)));
    let extra = match sets().next() {
        None => None,
        Some(_) => match stage::collect(sets())? {
            Some(part) => Some(part),
            None => return Ok(None),
        },
    };
    Ok(Some((overlay.entries.into_keys().collect(), extra)))
}

/// Each scope's unsaved state for a load, read consistently from the
/// `overlays` of its scopes: a `set` racing the read of a value it replaced
/// makes the whole snapshot be taken again.
pub fn for_load(overlays: impl Fn() -> Vec<Overlay>) -> Result<Unsaved> {
    'snapshot: for _ in 0..STALE_RETRIES {
        let overlays = overlays();
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
