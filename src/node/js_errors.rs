//! Engine errors become JavaScript errors with a stable `code` property.

use napi::bindgen_prelude::{FromNapiValue, Unknown};
use napi::{sys, Env, Error, Status};

use crate::engine;

pub const CODE_INVALID_ARG: &str = "PACKCACHE_INVALID_ARG";

/// A JS string, or null if N-API failed (the env is going away).
fn js_string(env: sys::napi_env, s: &str) -> sys::napi_value {
    let mut out = std::ptr::null_mut();
    // SAFETY: `s` is valid UTF-8 of the given length; `env` is the caller's
    // current env (every caller is a call from JS or an N-API callback).
    let status = unsafe { sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut out) };
    if status == sys::Status::napi_ok {
        out
    } else {
        std::ptr::null_mut()
    }
}

/// An `Error` (or `TypeError`) object with `code`; null if N-API failed.
pub fn error_object(raw_env: sys::napi_env, type_error: bool, code: &str, message: &str) -> sys::napi_value {
    let (code_v, msg_v) = (js_string(raw_env, code), js_string(raw_env, message));
    if code_v.is_null() || msg_v.is_null() {
        return std::ptr::null_mut();
    }
    let mut obj = std::ptr::null_mut();
    // SAFETY: both strings are live values of this env; the out-pointer is valid.
    let status = unsafe {
        match type_error {
            true => sys::napi_create_type_error(raw_env, code_v, msg_v, &mut obj),
            false => sys::napi_create_error(raw_env, code_v, msg_v, &mut obj),
        }
    };
    if status == sys::Status::napi_ok {
        obj
    } else {
        std::ptr::null_mut()
    }
}

/// Builds an `Error` (or `TypeError`) object with `code` and returns it as a
/// napi `Error` that throws / rejects with exactly that object.
fn make(env: &Env, type_error: bool, code: &str, message: &str) -> Error {
    let raw_env = env.raw();
    let obj = error_object(raw_env, type_error, code, message);
    if obj.is_null() {
        return Error::new(Status::GenericFailure, format!("{code}: {message}"));
    }
    // SAFETY: `obj` is a live error object of this env.
    match unsafe { Unknown::from_napi_value(raw_env, obj) } {
        Ok(value) => Error::from(value),
        Err(e) => e,
    }
}

pub fn engine_error(env: &Env, e: &engine::Error) -> Error {
    make(env, false, e.code(), &e.to_string())
}

pub fn type_error(env: &Env, message: &str) -> Error {
    make(env, true, CODE_INVALID_ARG, message)
}

pub fn invalid_arg(env: &Env, message: &str) -> Error {
    make(env, false, CODE_INVALID_ARG, message)
}

/// A damaged-data error of one scope of a load names that scope.
pub(crate) fn in_scope(scope: &str, e: engine::Error) -> engine::Error {
    match e {
        engine::Error::Corrupted { what } => engine::Error::corrupted(format!("scope {scope:?}: {what}")),
        other => other,
    }
}

/// The `code` of every error packcache throws or rejects with (README,
/// "Error codes").
#[allow(non_camel_case_types, dead_code)]
#[napi_derive::napi(string_enum)]
pub enum PackcacheErrorCode {
    /// Bytes on disk failed a checksum or structural check.
    PACKCACHE_CORRUPT,
    /// A bad argument or option; a wrong JS type throws a `TypeError` with it.
    PACKCACHE_INVALID_ARG,
    /// `save()` or `reset()` on a `readonly` instance.
    PACKCACHE_READONLY,
    /// The OS refused; its error is in the message.
    PACKCACHE_IO,
    /// A call after `close()`.
    PACKCACHE_CLOSED,
    /// A bug in packcache.
    PACKCACHE_INTERNAL,
    /// `require('packcache')` where no prebuilt binary fits (thrown by `loader.js`).
    PACKCACHE_UNSUPPORTED_PLATFORM,
}
