//! A cache directory seen from outside any store: what the `packcache` CLI
//! prints. Everything here only reads, except `expire`, which is the
//! expiry a save runs (same locks, same rules).

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::engine::core::{view_of, Options};
use crate::engine::error::{Error, Result};
use crate::engine::fs::Fs;
use crate::engine::layout::{is_version_dir_name, MANIFEST_NAME};
use crate::engine::manifest::{self, Manifest, PackMeta};
use crate::engine::pack::reader::Verify;

/// One version directory.
pub struct VersionInfo {
    pub dir: String,
    /// The version string, from the manifest (`None` without one).
    pub version: Option<String>,
    /// When a store last used it (the manifest's mtime).
    pub last_used: Option<SystemTime>,
    pub generation: u64,
    pub scopes: Vec<ScopeInfo>,
    /// Every file of the directory.
    pub disk_bytes: u64,
    /// Why the manifest could not be read, if it could not.
    pub error: Option<String>,
}

pub struct ScopeInfo {
    pub name: String,
    /// The scope's pack files, oldest first.
    pub pack_files: Vec<String>,
    /// Live items and their raw bytes (keys and values).
    pub items: u64,
    pub raw_bytes: u64,
    pub packs: u32,
    /// The scope's pack files.
    pub disk_bytes: u64,
}

/// A pack that failed its checks.
pub struct Damage {
    pub dir: String,
    pub scope: String,
    pub pack: String,
    pub error: String,
}

fn version_dirs(fs: &dyn Fs, root: &Path) -> Result<Vec<String>> {
    if !fs.is_dir(root).map_err(|e| Error::io("stat", root, e))? {
        let why = std::io::Error::new(std::io::ErrorKind::NotFound, "not a cache directory");
        return Err(Error::io("open", root, why));
    }
    let mut dirs: Vec<String> = fs
        .read_dir(root)
        .map_err(|e| Error::io("read directory", root, e))?
        .into_iter()
        .filter(|e| e.is_dir && is_version_dir_name(&e.name))
        .map(|e| e.name)
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Every version directory under `root` with its scopes.
pub fn versions(fs: &dyn Fs, root: &Path) -> Result<Vec<VersionInfo>> {
    let mut out = Vec::new();
    for name in version_dirs(fs, root)? {
        let dir = root.join(&name);
        let files = fs.read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))?;
        let disk_bytes = files.iter().filter(|f| f.is_file).map(|f| file_len(fs, &dir.join(&f.name))).sum();
        let last_used = fs.modified(&dir.join(MANIFEST_NAME)).ok().flatten();
        let mut info = VersionInfo {
            dir: name,
            version: None,
            last_used,
            generation: 0,
            scopes: Vec::new(),
            disk_bytes,
            error: None,
        };
        match manifest::read(fs, &dir) {
            Ok(Some(m)) => fill(&mut info, &m),
            Ok(None) => {}
            Err(e) => info.error = Some(e.to_string()),
        }
        out.push(info);
    }
    Ok(out)
}

fn fill(info: &mut VersionInfo, m: &Manifest) {
    info.version = Some(m.version.clone());
    info.generation = m.generation;
    info.scopes = m
        .scopes
        .iter()
        .map(|s| ScopeInfo {
            name: s.name.clone(),
            pack_files: s.packs.iter().map(|p| p.file_name()).collect(),
            items: s.packs.iter().map(|p| p.live_items() as u64).sum(),
            raw_bytes: s.packs.iter().map(|p| p.raw_bytes - p.dead_bytes).sum(),
            packs: s.packs.len() as u32,
            disk_bytes: s.packs.iter().map(|p| p.file_len).sum(),
        })
        .collect();
}

fn file_len(fs: &dyn Fs, path: &Path) -> u64 {
    fs.stamp(path).ok().flatten().map_or(0, |s| s.len)
}

/// Checks every byte of every pack every manifest names (each block against
/// its checksum). Returns the number of packs checked and the damaged ones
/// (a missing pack included).
pub fn verify(fs: &dyn Fs, root: &Path) -> Result<(u64, Vec<Damage>)> {
    let mut work = Vec::new();
    let mut damaged = Vec::new();
    for name in version_dirs(fs, root)? {
        let dir = root.join(&name);
        match manifest::read(fs, &dir) {
            Ok(Some(m)) => {
                for s in &m.scopes {
                    work.extend(s.packs.iter().map(|p| (name.clone(), s.name.clone(), p.clone())));
                }
            }
            Ok(None) => {}
            Err(e) => damaged.push(Damage {
                dir: name,
                scope: String::new(),
                pack: MANIFEST_NAME.into(),
                error: e.to_string(),
            }),
        }
    }
    let total = work.len() as u64;
    for (name, scope, meta) in work {
        if let Err(e) = check_pack(fs, &root.join(&name), &meta) {
            damaged.push(Damage { dir: name, scope, pack: meta.file_name(), error: e.to_string() });
        }
    }
    Ok((total, damaged))
}

/// Every block of the pack `meta` names, in `dir`, against its checksum.
fn check_pack(fs: &dyn Fs, dir: &Path, meta: &PackMeta) -> Result<()> {
    let path = dir.join(meta.file_name());
    let blob = fs.map_file_whole(&path).map_err(|e| Error::io("open", &path, e))?;
    view_of(blob, meta, Verify::Full).map(|_| ())
}

/// Checks one pack of version directory `dir` (a file its manifest names)
/// as `verify` does: `Some(why)` when it is damaged or missing.
pub fn verify_pack(fs: &dyn Fs, root: &Path, dir: &str, pack_file: &str) -> Result<Option<String>> {
    let dir = root.join(dir);
    let Some(m) = manifest::read(fs, &dir)? else { return Ok(Some("no manifest".into())) };
    let Some(meta) = m.scopes.iter().flat_map(|s| &s.packs).find(|p| p.file_name() == pack_file) else {
        return Ok(Some(format!("{pack_file} is not named by the manifest")));
    };
    Ok(check_pack(fs, &dir, meta).err().map(|e| e.to_string()))
}

/// The live keys of `scope` in version directory `dir`, with their value sizes.
pub fn keys(fs: &dyn Fs, root: &Path, dir: &str, scope: &str) -> Result<Vec<(Vec<u8>, u64)>> {
    let dir = root.join(dir);
    let Some(m) = manifest::read(fs, &dir)? else { return Ok(Vec::new()) };
    let Some(s) = m.scope(scope) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for meta in &s.packs {
        let path = dir.join(meta.file_name());
        let blob = fs.map_file(&path).map_err(|e| Error::io("open", &path, e))?;
        let view = view_of(blob, meta, Verify::IndexOnly)?;
        out.extend(
            (0..view.len()).filter(|&i| !meta.is_dead(i as u32)).map(|i| (view.key(i).to_vec(), view.value_len(i))),
        );
    }
    out.sort();
    Ok(out)
}

/// Versions unused for longer than `expire`: deleted as a save's expiry
/// deletes them (not while open anywhere, saving or staging), or, with
/// `dry_run`, only listed (then the locks are not tried).
pub fn expire(fs: &dyn Fs, root: &Path, expire: Duration, dry_run: bool) -> Result<Vec<String>> {
    let now = SystemTime::now();
    let old: Vec<String> = versions(fs, root)?
        .into_iter()
        .filter(|v| v.last_used.and_then(|t| now.duration_since(t).ok()).is_some_and(|age| age > expire))
        .map(|v| v.dir)
        .collect();
    if dry_run {
        return Ok(old);
    }
    let mut opts = Options::new(root, "");
    opts.expire = Some(expire);
    crate::engine::gc::expire_versions(fs, &opts, Path::new(""));
    Ok(old.into_iter().filter(|d| !fs.is_dir(&root.join(d)).unwrap_or(true)).collect())
}
