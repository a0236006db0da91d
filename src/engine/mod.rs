//! The pack storage engine. It knows nothing of N-API: the binding in
//! `src/node/` wraps [`Store`]. Layers, bottom up (each file imports only
//! from layers below it; docs/ARCHITECTURE.md draws them):
//!
//! - support: `error`, `par` (threads sharing the cores), `memory`,
//!   `keyhash` (key arena and table);
//! - `fs`: every disk access, behind the [`fs::Fs`] trait (the real file
//!   system, and fault-injecting and power-loss ones for tests);
//! - `pack`: one pack file (format, writer, reader, key filter);
//! - `layout`: every file name in a cache directory, temp-and-rename;
//! - `manifest`: the commit point;
//! - `pairs`: what a read hands out (pairs as ranges of shared buffers);
//! - `unsaved`: sets and removes before their save (pending maps, staging
//!   chunks, stage files);
//! - `core`: the state reads and writes share (options, caches);
//! - `read` (get, load) and `write` (save, compaction) and `gc`;
//! - `store`: the public [`Store`].

pub mod core;
pub mod error;
pub mod fingerprint;
pub mod fs;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod gc;
pub mod inspect;
pub mod keyhash;
pub mod layout;
pub mod log;
pub mod manifest;
pub(crate) mod memory;
pub mod pack;
pub mod pairs;
mod par;
pub mod read;
pub mod store;
pub mod unsaved;
pub mod write;

#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use pack::writer::Compression;
pub use pairs::{LoadedScope, PairBuf};
pub use store::{Options, SaveStats, Store};
