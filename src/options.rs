//! `PackStorageOptions` from a JavaScript object, with type checks.

use std::time::Duration;

use napi::bindgen_prelude::{FromNapiValue, Unknown};
use napi::{check_status, sys, Env, JsValue, Result, ValueType};
use napi_derive::napi;

use crate::engine::{Compression, Options};
use crate::js_errors::{invalid_arg, type_error};

/// Options of `new PackStorage(options)`.
// Parsed by hand (`parse`) for TypeErrors; this struct gives the TS interface.
#[allow(dead_code)]
#[napi(object)]
pub struct PackStorageOptions {
    /// Cache directory; created if missing (unless `readonly`).
    pub root: String,
    /// Data written under another version is invisible to this one.
    pub version: String,
    /// Compression of new packs. Default `'zstd'`.
    #[napi(ts_type = "'zstd' | 'none'")]
    pub compression: Option<String>,
    /// zstd level (1 = fastest, up to 22). Default 1.
    pub compression_level: Option<i32>,
    /// Target uncompressed bytes per pack, and per staging chunk of unsaved
    /// sets (compressed in the background once full). Default 4 MiB.
    pub pack_size: Option<f64>,
    /// Milliseconds: other versions unused for longer are deleted by `save()`,
    /// and so are directories of an older on-disk format. Default 7 days;
    /// `Infinity` keeps them forever.
    pub expire: Option<f64>,
    /// fsync packs, manifest and directory before `save()` resolves. Default false.
    pub fsync: Option<bool>,
    /// Never write: `save()` and `reset()` reject with `PACKCACHE_READONLY`. Default false.
    pub readonly: Option<bool>,
}

/// The keys of `PackStorageOptions`.
const KNOWN: [&str; 8] = ["root", "version", "compression", "compressionLevel", "packSize", "expire", "fsync", "readonly"];

struct Reader<'a> {
    env: &'a Env,
    obj: sys::napi_value,
}

impl<'a> Reader<'a> {
    fn prop(&self, name: &str) -> Result<Option<Unknown<'a>>> {
        let cname = std::ffi::CString::new(name).expect("property names have no NUL");
        let mut out = std::ptr::null_mut();
        // SAFETY: `obj` is a live object of this env; a throwing getter
        // leaves its exception pending and `check_status!` hands it on.
        check_status!(unsafe { sys::napi_get_named_property(self.env.raw(), self.obj, cname.as_ptr(), &mut out) })?;
        // SAFETY: `out` was just returned by N-API for this env.
        let value = unsafe { Unknown::from_napi_value(self.env.raw(), out)? };
        match value.get_type()? {
            ValueType::Undefined => Ok(None),
            _ => Ok(Some(value)),
        }
    }

    /// Rejects own enumerable keys that are not options (a typo such as
    /// `compresion` would otherwise silently keep the default).
    fn reject_unknown_keys(&self) -> Result<()> {
        let mut names = std::ptr::null_mut();
        // SAFETY: `obj` is a live object of this env; the out-pointer is valid.
        check_status!(unsafe {
            sys::napi_get_all_property_names(
                self.env.raw(),
                self.obj,
                sys::KeyCollectionMode::own_only,
                sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
                sys::KeyConversion::numbers_to_strings,
                &mut names,
            )
        })?;
        // SAFETY: `names` is the array N-API just returned.
        let names = unsafe { Unknown::from_napi_value(self.env.raw(), names)? };
        for key in crate::args::string_array(self.env, &names, "options keys")? {
            if !KNOWN.contains(&key.as_str()) {
                let known = KNOWN.join(", ");
                return Err(invalid_arg(self.env, &format!("unknown option {key:?} (options are {known})")));
            }
        }
        Ok(())
    }

    fn string(&self, name: &str) -> Result<Option<String>> {
        match self.prop(name)? {
            None => Ok(None),
            Some(v) => crate::args::string(self.env, &v, &format!("options.{name}")).map(Some),
        }
    }

    fn number(&self, name: &str) -> Result<Option<f64>> {
        let Some(v) = self.prop(name)? else { return Ok(None) };
        if v.get_type()? != ValueType::Number {
            return Err(type_error(self.env, &format!("options.{name} must be a number")));
        }
        let mut out = 0f64;
        // SAFETY: `v` is a number of this env (checked above).
        check_status!(unsafe { sys::napi_get_value_double(self.env.raw(), v.raw(), &mut out) })?;
        if out.is_nan() {
            return Err(invalid_arg(self.env, &format!("options.{name} must not be NaN")));
        }
        Ok(Some(out))
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>> {
        let Some(v) = self.prop(name)? else { return Ok(None) };
        if v.get_type()? != ValueType::Boolean {
            return Err(type_error(self.env, &format!("options.{name} must be a boolean")));
        }
        let mut out = false;
        // SAFETY: `v` is a boolean of this env (checked above).
        check_status!(unsafe { sys::napi_get_value_bool(self.env.raw(), v.raw(), &mut out) })?;
        Ok(Some(out))
    }
}

pub fn parse(env: &Env, value: &Unknown) -> Result<Options> {
    if value.get_type()? != ValueType::Object {
        return Err(type_error(env, "options must be an object"));
    }
    let r = Reader { env, obj: value.raw() };
    r.reject_unknown_keys()?;
    let root = r.string("root")?.ok_or_else(|| type_error(env, "options.root must be a string"))?;
    let version = r.string("version")?.ok_or_else(|| type_error(env, "options.version must be a string"))?;
    if root.is_empty() || root.contains('\0') {
        return Err(invalid_arg(env, "options.root must be a non-empty path without NUL"));
    }
    let mut opts = Options::new(root, version);
    let level = match r.number("compressionLevel")? {
        Some(l) if l.fract() != 0.0 || l.is_infinite() => {
            return Err(invalid_arg(env, "options.compressionLevel must be an integer"))
        }
        Some(l) => {
            let range = zstd::compression_level_range();
            if l < *range.start() as f64 || l > *range.end() as f64 {
                let (lo, hi) = (range.start(), range.end());
                return Err(invalid_arg(env, &format!("options.compressionLevel {l} is outside {lo}..={hi}")));
            }
            l as i32
        }
        None => crate::engine::store::DEFAULT_LEVEL,
    };
    opts.compression = match r.string("compression")?.as_deref() {
        None | Some("zstd") => Compression::Zstd(level),
        Some("none") => Compression::None,
        Some(other) => {
            return Err(invalid_arg(env, &format!("options.compression must be 'zstd' or 'none', not {other:?}")))
        }
    };
    if let Some(size) = r.number("packSize")? {
        if !(1.0..=(1u64 << 40) as f64).contains(&size) {
            return Err(invalid_arg(env, "options.packSize must be between 1 and 2^40"));
        }
        opts.pack_size = size as u64;
    }
    if let Some(ms) = r.number("expire")? {
        if ms < 0.0 {
            return Err(invalid_arg(env, "options.expire must not be negative"));
        }
        opts.expire = if ms.is_finite() { Some(Duration::from_millis(ms as u64)) } else { None };
    }
    opts.fsync = r.boolean("fsync")?.unwrap_or(false);
    opts.readonly = r.boolean("readonly")?.unwrap_or(false);
    Ok(opts)
}
