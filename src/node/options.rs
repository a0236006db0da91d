//! `PackStorageOptions` from a JavaScript object. The struct is the one
//! source of truth: napi-rs makes the TS interface from it, `read` fills it
//! field by field (TypeErrors for wrong JS types, our own messages, unknown
//! keys rejected) and `into_engine` checks the values and converts them.
//! `KNOWN` lists its fields' JS names; a JS test checks it against the
//! generated interface, so the two cannot drift.

use std::time::Duration;

use napi::bindgen_prelude::{FromNapiValue, Unknown};
use napi::{check_status, sys, Env, JsValue, Result, ValueType};
use napi_derive::napi;

use crate::engine::{Compression, Options};
use crate::node::js_errors::{invalid_arg, type_error};

/// Options of `new PackStorage(options)`.
#[napi(object)]
pub struct PackStorageOptions {
    /// Cache directory; created if missing (unless `readonly`).
    pub root: String,
    /// Data written under another version is invisible to this one.
    pub version: String,
    /// Compression of new packs: `'lz4'` (the default: the fastest loads and
    /// saves of the three at under half the raw size), `'zstd'` (≈ 25 %
    /// smaller, slower) or `'none'`. Packs written with another setting stay
    /// readable; compaction rewrites them with this one.
    #[napi(ts_type = "'zstd' | 'lz4' | 'none'")]
    pub compression: Option<String>,
    /// zstd level (1 = fastest, up to 22; negative levels are faster still).
    /// Default 1. Given without `compression`, it selects `'zstd'`; beside
    /// `'lz4'` or `'none'` it is an error.
    pub compression_level: Option<f64>,
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

/// The JS names of `PackStorageOptions`' fields, in order.
const KNOWN: [&str; 8] =
    ["root", "version", "compression", "compressionLevel", "packSize", "expire", "fsync", "readonly"];

struct Reader<'a> {
    env: &'a Env,
    obj: sys::napi_value,
    known: &'static [&'static str],
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
        for key in crate::node::args::string_array(self.env, &names, "options keys")? {
            if !self.known.contains(&key.as_str()) {
                let known = self.known.join(", ");
                return Err(invalid_arg(self.env, &format!("unknown option {key:?} (options are {known})")));
            }
        }
        Ok(())
    }

    fn string(&self, name: &str) -> Result<Option<String>> {
        match self.prop(name)? {
            None => Ok(None),
            Some(v) => crate::node::args::string(self.env, &v, &format!("options.{name}")).map(Some),
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

/// `listDirectories` of `fingerprint`'s optional options object (default true).
pub fn fingerprint_list_directories(env: &Env, value: &Unknown) -> Result<bool> {
    match value.get_type()? {
        ValueType::Undefined => return Ok(true),
        ValueType::Object => {}
        _ => return Err(type_error(env, "options must be an object")),
    }
    let r = Reader { env, obj: value.raw(), known: &["listDirectories"] };
    r.reject_unknown_keys()?;
    Ok(r.boolean("listDirectories")?.unwrap_or(true))
}

/// The engine's options from a JS options object.
pub fn parse(env: &Env, value: &Unknown) -> Result<Options> {
    read(env, value)?.into_engine().map_err(|message| invalid_arg(env, &message))
}

/// The options object's fields, each of its JS type (or a `TypeError`).
fn read(env: &Env, value: &Unknown) -> Result<PackStorageOptions> {
    if value.get_type()? != ValueType::Object {
        return Err(type_error(env, "options must be an object"));
    }
    let r = Reader { env, obj: value.raw(), known: &KNOWN };
    r.reject_unknown_keys()?;
    Ok(PackStorageOptions {
        root: r.string("root")?.ok_or_else(|| type_error(env, "options.root must be a string"))?,
        version: r.string("version")?.ok_or_else(|| type_error(env, "options.version must be a string"))?,
        compression: r.string("compression")?,
        compression_level: r.number("compressionLevel")?,
        pack_size: r.number("packSize")?,
        expire: r.number("expire")?,
        fsync: r.boolean("fsync")?,
        readonly: r.boolean("readonly")?,
    })
}

impl PackStorageOptions {
    /// Checks every value and converts them; `Err` is the message of a
    /// `PACKCACHE_INVALID_ARG` error.
    fn into_engine(self) -> std::result::Result<Options, String> {
        if self.root.is_empty() || self.root.contains('\0') {
            return Err("options.root must be a non-empty path without NUL".into());
        }
        let mut opts = Options::new(self.root, self.version);
        let level = match self.compression_level {
            Some(l) if l.fract() != 0.0 || l.is_infinite() => {
                return Err("options.compressionLevel must be an integer".into())
            }
            Some(l) => {
                let range = zstd::compression_level_range();
                if l < *range.start() as f64 || l > *range.end() as f64 {
                    let (lo, hi) = (range.start(), range.end());
                    return Err(format!("options.compressionLevel {l} is outside {lo}..={hi}"));
                }
                Some(l as i32)
            }
            None => None,
        };
        // A level names zstd: given alone, it picks zstd; beside another
        // codec it is a mistake, not something to ignore.
        opts.compression = match (self.compression.as_deref(), level) {
            (None, None) => crate::engine::store::DEFAULT_COMPRESSION,
            (None | Some("zstd"), level) => Compression::Zstd(level.unwrap_or(crate::engine::store::DEFAULT_LEVEL)),
            (Some(codec @ ("lz4" | "none")), Some(_)) => {
                return Err(format!("options.compressionLevel applies to 'zstd' only, not {codec:?}"))
            }
            (Some("lz4"), None) => Compression::Lz4,
            (Some("none"), None) => Compression::None,
            (Some(other), _) => {
                return Err(format!("options.compression must be 'zstd', 'lz4' or 'none', not {other:?}"))
            }
        };
        if let Some(size) = self.pack_size {
            if !(1.0..=(1u64 << 40) as f64).contains(&size) {
                return Err("options.packSize must be between 1 and 2^40".into());
            }
            opts.pack_size = size as u64;
        }
        if let Some(ms) = self.expire {
            if ms < 0.0 {
                return Err("options.expire must not be negative".into());
            }
            opts.expire = if ms.is_finite() { Some(Duration::from_millis(ms as u64)) } else { None };
        }
        opts.fsync = self.fsync.unwrap_or(false);
        opts.readonly = self.readonly.unwrap_or(false);
        Ok(opts)
    }
}
