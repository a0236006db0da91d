//! File fingerprints (`engine::fingerprint`) for plugins' fine-grained
//! invalidation: snapshots are opaque Buffers a plugin stores next to the
//! entries that depend on those files.

use napi::bindgen_prelude::{PromiseRaw, Unknown};
use napi::{Env, Result};
use napi_derive::napi;

use crate::engine::fingerprint::{self, Kind};
use crate::node::args;
use crate::node::binding::run;
use crate::node::convert::MaybeBuffer;
use crate::node::{js_errors, options};

/// One entry of a fingerprint snapshot.
#[napi(object)]
pub struct FileFingerprint {
    pub path: String,
    /// `'file'`, `'directory'`, `'missing'` or `'unreadable'`.
    pub kind: String,
    /// A directory recorded by existence only (`listDirectories: false`).
    pub unlisted: bool,
    /// Bytes (0 for a directory or a missing path).
    pub size: f64,
    /// Modification time, ms since the epoch (fractional).
    pub mtime_ms: f64,
    /// blake3 of the content (64 hex digits); of the sorted entry names for
    /// a directory; absent when missing or unreadable.
    pub hash: Option<String>,
}

/// Fingerprints `paths` (absolute; files, directories or paths that do not
/// exist yet) off the JS thread, on all cores: each path's size, mtime and
/// blake3 of its content (for a directory, of its sorted entry names; with
/// `listDirectories: false` a directory counts by its existence only, as
/// for the directories a resolver looks through). Resolves with a snapshot
/// Buffer to store beside the cache entries that depend on those paths, and
/// to pass to `changedFiles` later. A relative path rejects with
/// `PACKCACHE_INVALID_ARG`.
#[napi(
    catch_unwind,
    ts_args_type = "paths: string[], options?: { listDirectories?: boolean }",
    ts_return_type = "Promise<Buffer>"
)]
pub fn fingerprint<'e>(env: &'e Env, paths: Unknown, options: Unknown) -> Result<PromiseRaw<'e, MaybeBuffer>> {
    let paths = args::string_array(env, &paths, "paths")?;
    let list_directories = options::fingerprint_list_directories(env, &options)?;
    run(env, move || fingerprint::snapshot(paths, list_directories).map(Some), MaybeBuffer)
}

/// The paths of `snapshot` whose state changed since it was taken: created,
/// deleted, or with different content (for a directory: a different list of
/// entries). An unchanged file costs one `stat`; a file is read and hashed
/// only when its size or mtime moved (or it was modified within 2 s of the
/// snapshot, where a coarse clock could hide a write), so a file saved again
/// with the same bytes is not reported. Foreign bytes reject with
/// `PACKCACHE_INVALID_ARG`.
#[napi(catch_unwind, ts_args_type = "snapshot: Buffer | Uint8Array", ts_return_type = "Promise<string[]>")]
pub fn changed_files<'e>(env: &'e Env, snapshot: Unknown) -> Result<PromiseRaw<'e, Vec<String>>> {
    let bytes = args::data(env, &snapshot)?.into_owned();
    run(env, move || fingerprint::changed_paths(&bytes), |paths| paths)
}

/// The entries of a snapshot, decoded (for logs and tests).
#[napi(catch_unwind, ts_args_type = "snapshot: Buffer | Uint8Array")]
pub fn fingerprint_entries(env: Env, snapshot: Unknown) -> Result<Vec<FileFingerprint>> {
    let bytes = args::data(&env, &snapshot)?;
    let states = fingerprint::decode(&bytes).map_err(|e| js_errors::engine_error(&env, &e))?;
    Ok(states.into_iter().map(to_js).collect())
}

fn to_js(s: fingerprint::FileState) -> FileFingerprint {
    let kind = match s.kind {
        Kind::Missing => "missing",
        Kind::File => "file",
        Kind::Directory => "directory",
        Kind::Unreadable => "unreadable",
    };
    let hashed = s.kind == Kind::File || (s.kind == Kind::Directory && !s.unlisted);
    FileFingerprint {
        path: s.path,
        kind: kind.into(),
        unlisted: s.unlisted,
        size: s.size as f64,
        mtime_ms: s.mtime_ns as f64 / 1e6,
        hash: hashed.then(|| s.hash.iter().map(|b| format!("{b:02x}")).collect()),
    }
}
