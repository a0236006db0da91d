//! Looking into a cache directory without opening a store: the functions
//! the `packcache` CLI (bin/packcache.js) calls. Each runs on the worker
//! pool and resolves with plain objects.

use std::path::PathBuf;
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, PromiseRaw, Unknown};
use napi::{Env, Result};
use napi_derive::napi;

use crate::engine::fs::RealFs;
use crate::engine::inspect;
use crate::node::args;
use crate::node::binding::run;
use crate::node::js_errors::invalid_arg;

/// One scope of a version, as its manifest describes it.
#[napi(object)]
pub struct ScopeStats {
    pub name: String,
    /// Its pack files, oldest first.
    pub pack_files: Vec<String>,
    /// Live items.
    pub items: f64,
    /// Raw bytes (keys and values) of the live items.
    pub raw_bytes: f64,
    pub packs: u32,
    /// Bytes of the scope's pack files.
    pub disk_bytes: f64,
}

/// One version directory of a cache.
#[napi(object)]
pub struct VersionStats {
    /// The directory's name (`pc3-` and 32 hex digits).
    pub dir: String,
    /// The version string, when the manifest could be read.
    pub version: Option<String>,
    /// When a store last used it: ms since the epoch (the manifest's mtime).
    pub last_used: Option<f64>,
    /// Commits so far.
    pub generation: f64,
    pub scopes: Vec<ScopeStats>,
    /// Bytes of every file of the directory.
    pub disk_bytes: f64,
    /// Why the manifest could not be read, if it could not.
    pub error: Option<String>,
}

/// A pack (or manifest) that failed its checks.
#[napi(object)]
pub struct PackDamage {
    pub dir: String,
    pub scope: String,
    pub pack: String,
    pub error: String,
}

/// What `verify` checked and found.
#[napi(object)]
pub struct VerifyReport {
    pub packs: f64,
    pub damaged: Vec<PackDamage>,
}

/// A key of a scope and the size of its value.
#[napi(object)]
pub struct KeyInfo {
    pub key: Buffer,
    pub size: f64,
}

fn root_of(env: &Env, root: &Unknown) -> Result<PathBuf> {
    let root = args::string(env, root, "root")?;
    if root.is_empty() || root.contains('\0') {
        return Err(invalid_arg(env, "root must be a non-empty path without NUL"));
    }
    Ok(PathBuf::from(root))
}

/// Every version directory under `root`, with its scopes (reads only).
#[napi(catch_unwind, ts_args_type = "root: string", ts_return_type = "Promise<VersionStats[]>")]
pub fn inspect<'e>(env: &'e Env, root: Unknown) -> Result<PromiseRaw<'e, Vec<VersionStats>>> {
    let root = root_of(env, &root)?;
    let to_js = |versions: Vec<inspect::VersionInfo>| versions.into_iter().map(VersionStats::from).collect();
    run(env, move || inspect::versions(&RealFs, &root), to_js)
}

/// Checks every block of every pack of every version under `root` against
/// its checksum (reads only).
#[napi(catch_unwind, ts_args_type = "root: string", ts_return_type = "Promise<VerifyReport>")]
pub fn verify<'e>(env: &'e Env, root: Unknown) -> Result<PromiseRaw<'e, VerifyReport>> {
    let root = root_of(env, &root)?;
    let to_js = |(packs, damaged): (u64, Vec<inspect::Damage>)| VerifyReport {
        packs: packs as f64,
        damaged: damaged
            .into_iter()
            .map(|d| PackDamage { dir: d.dir, scope: d.scope, pack: d.pack, error: d.error })
            .collect(),
    };
    run(env, move || inspect::verify(&RealFs, &root), to_js)
}

/// Checks one pack (a file name from `inspect`) of the version directory
/// `dir` as `verify` does; resolves with why it is damaged, or `null`.
#[napi(
    catch_unwind,
    ts_args_type = "root: string, dir: string, pack: string",
    ts_return_type = "Promise<string | null>"
)]
pub fn verify_pack<'e>(
    env: &'e Env,
    root: Unknown,
    dir: Unknown,
    pack: Unknown,
) -> Result<PromiseRaw<'e, Option<String>>> {
    let root = root_of(env, &root)?;
    let dir = version_dir(env, &dir)?;
    let pack = args::string(env, &pack, "pack")?;
    if !crate::engine::pack::format::is_pack_file_name(&pack) {
        return Err(invalid_arg(env, &format!("{pack:?} is not a pack file name")));
    }
    run(env, move || inspect::verify_pack(&RealFs, &root, &dir, &pack), |why| why)
}

fn version_dir(env: &Env, dir: &Unknown) -> Result<String> {
    let dir = args::string(env, dir, "dir")?;
    if !crate::engine::layout::is_version_dir_name(&dir) {
        return Err(invalid_arg(env, &format!("{dir:?} is not a version directory name")));
    }
    Ok(dir)
}

/// The live keys of `scope` in the version directory `dir` under `root`,
/// sorted, with their value sizes (reads only the packs' indexes).
#[napi(catch_unwind, ts_args_type = "root: string, dir: string, scope: string", ts_return_type = "Promise<KeyInfo[]>")]
pub fn list_keys<'e>(
    env: &'e Env,
    root: Unknown,
    dir: Unknown,
    scope: Unknown,
) -> Result<PromiseRaw<'e, Vec<KeyInfo>>> {
    let root = root_of(env, &root)?;
    let dir = version_dir(env, &dir)?;
    let scope = args::string(env, &scope, "scope")?;
    crate::engine::core::validate_scope(&scope).map_err(|e| crate::node::js_errors::engine_error(env, &e))?;
    let to_js = |keys: Vec<(Vec<u8>, u64)>| {
        keys.into_iter().map(|(key, size)| KeyInfo { key: Buffer::from(key), size: size as f64 }).collect()
    };
    run(env, move || inspect::keys(&RealFs, &root, &dir, &scope), to_js)
}

/// Deletes the versions under `root` unused for longer than `expireMs`, as a
/// save's expiry does (never one open anywhere); with `dryRun`, only lists
/// them. Resolves with the directories deleted (or that would be).
#[napi(
    catch_unwind,
    ts_args_type = "root: string, expireMs: number, dryRun: boolean",
    ts_return_type = "Promise<string[]>"
)]
pub fn expire_versions<'e>(
    env: &'e Env,
    root: Unknown,
    expire_ms: f64,
    dry_run: bool,
) -> Result<PromiseRaw<'e, Vec<String>>> {
    let root = root_of(env, &root)?;
    if !(expire_ms >= 0.0 && expire_ms.is_finite()) {
        return Err(invalid_arg(env, "expireMs must be a finite number of milliseconds, at least 0"));
    }
    let expire = Duration::from_millis(expire_ms as u64);
    run(env, move || inspect::expire(&RealFs, &root, expire, dry_run), |dirs| dirs)
}

impl From<inspect::VersionInfo> for VersionStats {
    fn from(v: inspect::VersionInfo) -> Self {
        let ms =
            |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_millis() as f64);
        VersionStats {
            dir: v.dir,
            version: v.version,
            last_used: v.last_used.map(ms),
            generation: v.generation as f64,
            scopes: v
                .scopes
                .into_iter()
                .map(|s| ScopeStats {
                    name: s.name,
                    pack_files: s.pack_files,
                    items: s.items as f64,
                    raw_bytes: s.raw_bytes as f64,
                    packs: s.packs,
                    disk_bytes: s.disk_bytes as f64,
                })
                .collect(),
            disk_bytes: v.disk_bytes as f64,
            error: v.error,
        }
    }
}
