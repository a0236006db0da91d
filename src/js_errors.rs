//! Engine errors become JavaScript errors with a stable `code` property.

use napi::bindgen_prelude::{FromNapiValue, Unknown};
use napi::{sys, Env, Error, Status};

use crate::engine;

pub const CODE_INVALID_ARG: &str = "PACKCACHE_INVALID_ARG";

fn js_string(env: sys::napi_env, s: &str) -> sys::napi_value {
    let mut out = std::ptr::null_mut();
    unsafe { sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut out) };
    out
}

/// An `Error` (or `TypeError`) object with `code`; null if N-API failed.
pub fn error_object(raw_env: sys::napi_env, type_error: bool, code: &str, message: &str) -> sys::napi_value {
    let (code_v, msg_v) = (js_string(raw_env, code), js_string(raw_env, message));
    let mut obj = std::ptr::null_mut();
    unsafe {
        if type_error {
            sys::napi_create_type_error(raw_env, code_v, msg_v, &mut obj);
        } else {
            sys::napi_create_error(raw_env, code_v, msg_v, &mut obj);
        }
    }
    obj
}

/// Builds an `Error` (or `TypeError`) object with `code` and returns it as a
/// napi `Error` that throws / rejects with exactly that object.
fn make(env: &Env, type_error: bool, code: &str, message: &str) -> Error {
    let raw_env = env.raw();
    let obj = error_object(raw_env, type_error, code, message);
    if obj.is_null() {
        return Error::new(Status::GenericFailure, format!("{code}: {message}"));
    }
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
