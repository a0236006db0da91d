//! Engine results to JavaScript values, built on the JS thread with raw N-API
//! calls (one Buffer copy per key and value, arrays sized up front).

use napi::bindgen_prelude::ToNapiValue;
use napi::{check_status, sys, Result};

use crate::engine::LoadedScope;

/// `Array<[Buffer, Buffer]>` of one scope.
pub struct Pairs(pub LoadedScope);

/// `Array<Array<[Buffer, Buffer]>>`, one per requested scope.
pub struct PairsList(pub Vec<LoadedScope>);

/// `Buffer | null`.
pub struct MaybeBuffer(pub Option<Vec<u8>>);

unsafe fn buffer(env: sys::napi_env, bytes: &[u8]) -> Result<sys::napi_value> {
    let mut out = std::ptr::null_mut();
    let mut data = std::ptr::null_mut();
    check_status!(unsafe { sys::napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr().cast(), &mut data, &mut out) })?;
    Ok(out)
}

unsafe fn pairs_array(env: sys::napi_env, scope: &LoadedScope) -> Result<sys::napi_value> {
    let mut array = std::ptr::null_mut();
    check_status!(unsafe { sys::napi_create_array_with_length(env, scope.len(), &mut array) })?;
    let mut status = Ok(());
    let mut i = 0u32;
    scope.for_each(|key, value| {
        if status.is_err() {
            return;
        }
        status = (|| unsafe {
            let mut pair = std::ptr::null_mut();
            check_status!(sys::napi_create_array_with_length(env, 2, &mut pair))?;
            check_status!(sys::napi_set_element(env, pair, 0, buffer(env, key)?))?;
            check_status!(sys::napi_set_element(env, pair, 1, buffer(env, value)?))?;
            check_status!(sys::napi_set_element(env, array, i, pair))
        })();
        i += 1;
    });
    status.map(|_| array)
}

impl ToNapiValue for Pairs {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        unsafe { pairs_array(env, &val.0) }
    }
}

impl ToNapiValue for PairsList {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        let mut outer = std::ptr::null_mut();
        check_status!(unsafe { sys::napi_create_array_with_length(env, val.0.len(), &mut outer) })?;
        for (i, scope) in val.0.iter().enumerate() {
            unsafe {
                let inner = pairs_array(env, scope)?;
                check_status!(sys::napi_set_element(env, outer, i as u32, inner))?;
            }
        }
        Ok(outer)
    }
}

impl ToNapiValue for MaybeBuffer {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        match val.0 {
            Some(bytes) => unsafe { buffer(env, &bytes) },
            None => unsafe { ToNapiValue::to_napi_value(env, napi::bindgen_prelude::Null) },
        }
    }
}
