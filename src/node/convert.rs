//! Small engine results to JavaScript values. (Loads stream through `stream`.)

use std::ffi::c_void;

use napi::bindgen_prelude::ToNapiValue;
use napi::{check_status, sys, Result};

/// A new Buffer holding a copy of `bytes`.
///
/// # Safety
/// `env` is the env of the current thread, inside a call from JS or a
/// callback N-API makes.
pub unsafe fn copied(env: sys::napi_env, bytes: &[u8]) -> Result<sys::napi_value> {
    let (mut out, mut data) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: `bytes` is valid for its length; out-pointers are valid.
    check_status!(unsafe {
        sys::napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr().cast(), &mut data, &mut out)
    })?;
    Ok(out)
}

/// From this size on, a value becomes a Buffer over its own memory instead
/// of a copy of it (a copy costs a second buffer of that size, and faulting
/// it in).
const EXTERNAL_MIN: usize = 1 << 20;

/// # Safety
/// Called by N-API only, with the hint `owned` gave it.
unsafe extern "C" fn release_vec(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the box `owned` leaked; N-API finalizes once.
    drop(unsafe { Box::from_raw(hint.cast::<Vec<u8>>()) });
}

/// A Buffer over `bytes` without a copy when large (and external memory is
/// allowed), else a copy.
///
/// # Safety
/// As `copied`.
unsafe fn owned(env: sys::napi_env, bytes: Vec<u8>) -> Result<sys::napi_value> {
    if bytes.len() < EXTERNAL_MIN {
        // SAFETY: as the caller promises.
        return unsafe { copied(env, &bytes) };
    }
    let (ptr, len) = (bytes.as_ptr(), bytes.len());
    let hint = Box::into_raw(Box::new(bytes));
    let mut out = std::ptr::null_mut();
    // SAFETY: the Vec's heap bytes stay put and alive until `release_vec`
    // drops the box that owns them.
    let status = unsafe {
        sys::napi_create_external_buffer(env, len, ptr.cast_mut().cast(), Some(release_vec), hint.cast(), &mut out)
    };
    match status {
        sys::Status::napi_ok => Ok(out),
        sys::Status::napi_no_external_buffers_allowed => {
            // SAFETY: refused before Node took the hint: still ours.
            let bytes = unsafe { Box::from_raw(hint) };
            // SAFETY: as the caller promises.
            unsafe { copied(env, &bytes) }
        }
        // Node may have run the finalizer on the hint already (see
        // `stream::external`): never free it here. At worst it leaks.
        other => check_status!(other, "cannot make a Buffer of {} bytes", len).map(|()| out),
    }
}

/// `Buffer | null`: `get` returns one value, often from a block that was
/// decompressed just for it.
pub struct MaybeBuffer(pub Option<Vec<u8>>);

impl ToNapiValue for MaybeBuffer {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        match val.0 {
            // SAFETY: napi-rs calls this on the JS thread of `env`.
            Some(bytes) => unsafe { owned(env, bytes) },
            // SAFETY: as above.
            None => unsafe { ToNapiValue::to_napi_value(env, napi::bindgen_prelude::Null) },
        }
    }
}
