//! Checks of JavaScript arguments. Wrong types throw `TypeError`; the raw
//! N-API calls avoid a copy for Buffers and work for any Uint8Array.
//!
//! Strings: N-API writes a lone surrogate as U+FFFD, so `'x\uD800'` and
//! `'x\uFFFD'` would read as the same bytes and be one key. Wherever the
//! UTF-8 holds U+FFFD, the UTF-16 is read too and a lone surrogate rejected.

use std::borrow::Cow;

use napi::bindgen_prelude::Unknown;
use napi::{check_status, sys, Env, JsValue, Result, ValueType};

use crate::node::js_errors::type_error;

pub fn string(env: &Env, value: &Unknown, name: &str) -> Result<String> {
    if value.get_type()? != ValueType::String {
        return Err(type_error(env, &format!("{name} must be a string")));
    }
    read_string(env, value, name)
}

/// Calls `f` with a string argument read into a stack buffer (no allocation
/// for the short strings scope names are; longer ones take the slow path).
pub fn with_str<R>(env: &Env, value: &Unknown, name: &str, f: impl FnOnce(&str) -> R) -> Result<R> {
    if value.get_type()? != ValueType::String {
        return Err(type_error(env, &format!("{name} must be a string")));
    }
    let mut buf = [0u8; 256];
    let mut written = 0usize;
    // SAFETY: `buf` is writable for `buf.len()` bytes; N-API writes at most
    // that many (NUL included) and reports how many it wrote.
    check_status!(unsafe {
        sys::napi_get_value_string_utf8(env.raw(), value.raw(), buf.as_mut_ptr().cast(), buf.len(), &mut written)
    })?;
    if written < buf.len() - 1 {
        if let Ok(s) = std::str::from_utf8(&buf[..written]) {
            check_well_formed(env, value, s.as_bytes(), name)?;
            return Ok(f(s));
        }
    }
    Ok(f(&read_string(env, value, name)?))
}

fn read_string(env: &Env, value: &Unknown, name: &str) -> Result<String> {
    let (raw_env, raw) = (env.raw(), value.raw());
    let mut len = 0usize;
    // SAFETY: a null buffer asks only for the length.
    check_status!(unsafe { sys::napi_get_value_string_utf8(raw_env, raw, std::ptr::null_mut(), 0, &mut len) })?;
    let mut buf = vec![0u8; len + 1];
    let mut written = 0usize;
    // SAFETY: `buf` is writable for `buf.len()` bytes, as passed.
    check_status!(unsafe {
        sys::napi_get_value_string_utf8(raw_env, raw, buf.as_mut_ptr().cast(), buf.len(), &mut written)
    })?;
    buf.truncate(written);
    check_well_formed(env, value, &buf, name)?;
    String::from_utf8(buf).map_err(|_| type_error(env, &format!("{name} is not valid UTF-16")))
}

const REPLACEMENT: [u8; 3] = [0xEF, 0xBF, 0xBD];

/// Rejects a string with a lone surrogate (see the module comment). Only
/// strings whose UTF-8 holds U+FFFD are read again.
fn check_well_formed(env: &Env, value: &Unknown, utf8: &[u8], name: &str) -> Result<()> {
    if !utf8.windows(3).any(|w| w == REPLACEMENT) {
        return Ok(());
    }
    let (raw_env, raw) = (env.raw(), value.raw());
    let mut len = 0usize;
    // SAFETY: a null buffer asks only for the length (in code units).
    check_status!(unsafe { sys::napi_get_value_string_utf16(raw_env, raw, std::ptr::null_mut(), 0, &mut len) })?;
    let mut units = vec![0u16; len + 1];
    let mut written = 0usize;
    // SAFETY: `units` is writable for `units.len()` code units, as passed.
    check_status!(unsafe {
        sys::napi_get_value_string_utf16(raw_env, raw, units.as_mut_ptr(), units.len(), &mut written)
    })?;
    units.truncate(written);
    if char::decode_utf16(units).any(|c| c.is_err()) {
        return Err(type_error(env, &format!("{name} must not contain a lone surrogate (an unpaired U+D800-U+DFFF)")));
    }
    Ok(())
}

/// The bytes of a Buffer / Uint8Array, valid while `value` is.
fn typed_bytes<'a>(env: &Env, value: &'a Unknown) -> Option<&'a [u8]> {
    // SAFETY: the bytes are borrowed for as long as `value` is.
    unsafe { typed_bytes_raw(env, value.raw()) }
}

/// # Safety
/// `raw` is a live value of `env`, and stays alive (with no JS run that
/// could detach its buffer) for `'a`.
unsafe fn typed_bytes_raw<'a>(env: &Env, raw: sys::napi_value) -> Option<&'a [u8]> {
    let raw_env = env.raw();
    let mut is_typed = false;
    // SAFETY: `raw` is a live value of this env; the out-pointer is valid.
    let status = unsafe { sys::napi_is_typedarray(raw_env, raw, &mut is_typed) };
    if status != sys::Status::napi_ok || !is_typed {
        return None;
    }
    let mut kind = 0;
    let mut len = 0usize;
    let mut data = std::ptr::null_mut();
    let mut ab = std::ptr::null_mut();
    let mut offset = 0usize;
    // SAFETY: `raw` is a typed array (checked above); every out-pointer is valid.
    let status =
        unsafe { sys::napi_get_typedarray_info(raw_env, raw, &mut kind, &mut len, &mut data, &mut ab, &mut offset) };
    if status != sys::Status::napi_ok || kind != sys::TypedarrayType::uint8_array {
        return None;
    }
    if data.is_null() || len == 0 {
        return Some(&[]);
    }
    // SAFETY: N-API reports `len` bytes at `data`, alive as long as the array.
    Some(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

/// A key: Buffer, Uint8Array or string (stored as its UTF-8 bytes). A
/// Buffer's bytes are borrowed: valid while `value` is.
pub fn key<'a>(env: &Env, value: &'a Unknown) -> Result<Cow<'a, [u8]>> {
    bytes_or_string(env, value, "key")
}

fn bytes_or_string<'a>(env: &Env, value: &'a Unknown, name: &str) -> Result<Cow<'a, [u8]>> {
    if let Some(bytes) = typed_bytes(env, value) {
        return Ok(Cow::Borrowed(bytes));
    }
    if value.get_type()? == ValueType::String {
        return Ok(Cow::Owned(read_string(env, value, name)?.into_bytes()));
    }
    Err(type_error(env, &format!("{name} must be a Buffer, Uint8Array or string")))
}

/// Calls `f` with a value's bytes as parts: one part for a Buffer or
/// Uint8Array, one per element for an array of them (stored back to back,
/// with no concatenation on the JS side). Every element is read (running
/// any getter) before any element's bytes are borrowed, so no JS runs while
/// the borrowed slices live.
pub fn with_value_parts<R>(env: &Env, value: &Unknown, f: impl FnOnce(&[&[u8]]) -> R) -> Result<R> {
    if let Some(bytes) = typed_bytes(env, value) {
        return Ok(f(&[bytes]));
    }
    let mut is_array = false;
    // SAFETY: `value` is a live value of this env; the out-pointer is valid.
    check_status!(unsafe { sys::napi_is_array(env.raw(), value.raw(), &mut is_array) })?;
    if !is_array {
        return Err(type_error(env, "value must be a Buffer, Uint8Array or an array of them"));
    }
    let items = array(env, value, "value", "Buffers", |item, _| Ok(item.raw()))?;
    let mut parts = Vec::with_capacity(items.len());
    for (i, &item) in items.iter().enumerate() {
        // SAFETY: each element handle lives in this call's handle scope, and
        // no JS runs between here and the end of `f`.
        let bytes = unsafe { typed_bytes_raw(env, item) }
            .ok_or_else(|| type_error(env, &format!("value[{i}] must be a Buffer or Uint8Array")))?;
        parts.push(bytes);
    }
    Ok(f(&parts))
}

/// Data to hash: like a key.
pub fn data<'a>(env: &Env, value: &'a Unknown) -> Result<Cow<'a, [u8]>> {
    bytes_or_string(env, value, "data")
}

pub fn string_array(env: &Env, value: &Unknown, name: &str) -> Result<Vec<String>> {
    array(env, value, name, "strings", |item, at| string(env, item, at))
}

/// Keys (Buffers, Uint8Arrays or strings), copied: they go to another thread.
pub fn key_array(env: &Env, value: &Unknown, name: &str) -> Result<Vec<Vec<u8>>> {
    array(env, value, name, "keys", |item, at| bytes_or_string(env, item, at).map(Cow::into_owned))
}

/// Each element of a JS array, read by `read` (with its name for messages).
fn array<T>(
    env: &Env,
    value: &Unknown,
    name: &str,
    what: &str,
    mut read: impl FnMut(&Unknown, &str) -> Result<T>,
) -> Result<Vec<T>> {
    let mut is_array = false;
    // SAFETY: `value` is a live value of this env; the out-pointer is valid.
    check_status!(unsafe { sys::napi_is_array(env.raw(), value.raw(), &mut is_array) })?;
    if !is_array {
        return Err(type_error(env, &format!("{name} must be an array of {what}")));
    }
    let mut len = 0u32;
    // SAFETY: `value` is an array (checked above).
    check_status!(unsafe { sys::napi_get_array_length(env.raw(), value.raw(), &mut len) })?;
    let mut out = Vec::with_capacity(len as usize);
    for i in 0..len {
        let mut item = std::ptr::null_mut();
        // SAFETY: as above; a throwing getter leaves its exception pending,
        // and `check_status!` returns it as the call's error.
        check_status!(unsafe { sys::napi_get_element(env.raw(), value.raw(), i, &mut item) })?;
        // SAFETY: `item` was just returned by N-API for this env.
        let item = unsafe { <Unknown as napi::bindgen_prelude::FromNapiValue>::from_napi_value(env.raw(), item)? };
        out.push(read(&item, &format!("{name}[{i}]"))?);
    }
    Ok(out)
}
