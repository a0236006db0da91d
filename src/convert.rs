//! Small engine results to JavaScript values. (Loads stream through `stream`.)

use napi::bindgen_prelude::ToNapiValue;
use napi::{check_status, sys, Result};

/// A new Buffer holding a copy of `bytes`.
pub unsafe fn copied(env: sys::napi_env, bytes: &[u8]) -> Result<sys::napi_value> {
    let (mut out, mut data) = (std::ptr::null_mut(), std::ptr::null_mut());
    check_status!(unsafe { sys::napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr().cast(), &mut data, &mut out) })?;
    Ok(out)
}

/// `Buffer | null`, copied: `get` returns one value, often from a block that
/// was decompressed just for it.
pub struct MaybeBuffer(pub Option<Vec<u8>>);

impl ToNapiValue for MaybeBuffer {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        match val.0 {
            Some(bytes) => unsafe { copied(env, &bytes) },
            None => unsafe { ToNapiValue::to_napi_value(env, napi::bindgen_prelude::Null) },
        }
    }
}
