//! Engine results to JavaScript values, built on the JS thread with raw N-API
//! calls. A loaded pack's body (the mapping itself when uncompressed, else the
//! decompressed buffer) becomes one external Buffer, and values of at least
//! `VIEW_MIN` bytes are `subarray` views of it: no copy per value. Keys and
//! small values are copied (cheaper than a view, and they do not pin a pack).

use std::ffi::c_void;

use napi::bindgen_prelude::ToNapiValue;
use napi::{check_status, sys, Result};

use crate::engine::reader::Body;
use crate::engine::store::LoadedPack;
use crate::engine::LoadedScope;

const VIEW_MIN: usize = 256;

/// `Array<[Buffer, Buffer]>` of one scope.
pub struct Pairs(pub LoadedScope);

/// `Array<Array<[Buffer, Buffer]>>`, one per requested scope.
pub struct PairsList(pub Vec<LoadedScope>);

/// `Buffer | null`.
pub struct MaybeBuffer(pub Option<Vec<u8>>);

unsafe fn copy_buffer(env: sys::napi_env, bytes: &[u8]) -> Result<sys::napi_value> {
    let mut out = std::ptr::null_mut();
    let mut data = std::ptr::null_mut();
    check_status!(unsafe { sys::napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr().cast(), &mut data, &mut out) })?;
    Ok(out)
}

unsafe extern "C" fn release_body(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    drop(unsafe { Box::from_raw(hint.cast::<Body>()) });
}

/// A pack body exposed to JS without a copy, with its `subarray` method.
struct SharedBody {
    buffer: sys::napi_value,
    subarray: sys::napi_value,
    ptr: *const u8,
    len: usize,
}

impl SharedBody {
    /// The body's bytes; valid while `buffer` is (this call's handle scope).
    fn bytes(&self) -> &[u8] {
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// `Err(body)` where external buffers are not allowed: the caller copies.
unsafe fn share_body(env: sys::napi_env, body: Body) -> Result<std::result::Result<SharedBody, Body>> {
    let bytes = body.bytes();
    let (ptr, len) = (bytes.as_ptr().cast_mut(), bytes.len());
    let hint = Box::into_raw(Box::new(body));
    let mut buffer = std::ptr::null_mut();
    // SAFETY: `ptr..ptr+len` stays valid until `release_body` drops the box
    // that owns it (a Vec's heap data, or a private writable mapping).
    let status = unsafe {
        sys::napi_create_external_buffer(env, len, ptr.cast(), Some(release_body), hint.cast(), &mut buffer)
    };
    if status != sys::Status::napi_ok {
        return Ok(Err(*unsafe { Box::from_raw(hint) }));
    }
    let mut subarray = std::ptr::null_mut();
    check_status!(unsafe { sys::napi_get_named_property(env, buffer, c"subarray".as_ptr(), &mut subarray) })?;
    Ok(Ok(SharedBody { buffer, subarray, ptr: ptr.cast_const(), len }))
}

unsafe fn number(env: sys::napi_env, n: usize) -> Result<sys::napi_value> {
    let mut out = std::ptr::null_mut();
    check_status!(unsafe { sys::napi_create_double(env, n as f64, &mut out) })?;
    Ok(out)
}

unsafe fn view(env: sys::napi_env, shared: &SharedBody, range: std::ops::Range<usize>) -> Result<sys::napi_value> {
    let args = unsafe { [number(env, range.start)?, number(env, range.end)?] };
    let mut out = std::ptr::null_mut();
    check_status!(unsafe { sys::napi_call_function(env, shared.buffer, shared.subarray, 2, args.as_ptr(), &mut out) })?;
    Ok(out)
}

unsafe fn pair(env: sys::napi_env, key: sys::napi_value, value: sys::napi_value) -> Result<sys::napi_value> {
    let mut pair = std::ptr::null_mut();
    check_status!(unsafe { sys::napi_create_array_with_length(env, 2, &mut pair) })?;
    check_status!(unsafe { sys::napi_set_element(env, pair, 0, key) })?;
    check_status!(unsafe { sys::napi_set_element(env, pair, 1, value) })?;
    Ok(pair)
}

struct ArrayBuilder {
    array: sys::napi_value,
    next: u32,
}

impl ArrayBuilder {
    unsafe fn push(&mut self, env: sys::napi_env, value: sys::napi_value) -> Result<()> {
        check_status!(unsafe { sys::napi_set_element(env, self.array, self.next, value) })?;
        self.next += 1;
        Ok(())
    }
}

unsafe fn push_pack(env: sys::napi_env, scope: &LoadedScope, pack: LoadedPack, out: &mut ArrayBuilder) -> Result<()> {
    let LoadedPack { view: pv, body, dead } = pack;
    let live: Vec<usize> = (0..pv.len())
        .filter(|&i| dead.binary_search(&(i as u32)).is_err())
        .filter(|&i| scope.shadowed.is_empty() || !scope.shadowed.contains(pv.key(i)))
        .collect();
    let wants_views = live.iter().any(|&i| pv.value_range(i).len() >= VIEW_MIN);
    let (shared, kept) = match wants_views {
        true => match unsafe { share_body(env, body)? } {
            Ok(shared) => (Some(shared), None),
            Err(body) => (None, Some(body)),
        },
        false => (None, Some(body)),
    };
    let bytes = match (&shared, &kept) {
        (Some(s), _) => s.bytes(),
        (None, Some(b)) => b.bytes(),
        (None, None) => unreachable!("a body is either shared or kept"),
    };
    for i in live {
        let range = pv.value_range(i);
        let key = unsafe { copy_buffer(env, pv.key(i))? };
        let value = match &shared {
            Some(s) if range.len() >= VIEW_MIN => unsafe { view(env, s, range)? },
            _ => unsafe { copy_buffer(env, &bytes[range])? },
        };
        unsafe { out.push(env, pair(env, key, value)?)? };
    }
    Ok(())
}

unsafe fn pairs_array(env: sys::napi_env, mut scope: LoadedScope) -> Result<sys::napi_value> {
    let mut out = ArrayBuilder { array: std::ptr::null_mut(), next: 0 };
    check_status!(unsafe { sys::napi_create_array_with_length(env, scope.len(), &mut out.array) })?;
    let packs = std::mem::take(&mut scope.packs);
    for pack in packs {
        unsafe { push_pack(env, &scope, pack, &mut out)? };
    }
    for (k, v) in &scope.extra {
        unsafe {
            let key = copy_buffer(env, k)?;
            let value = copy_buffer(env, v)?;
            out.push(env, pair(env, key, value)?)?;
        }
    }
    Ok(out.array)
}

impl ToNapiValue for Pairs {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        unsafe { pairs_array(env, val.0) }
    }
}

impl ToNapiValue for PairsList {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        let mut outer = std::ptr::null_mut();
        check_status!(unsafe { sys::napi_create_array_with_length(env, val.0.len(), &mut outer) })?;
        for (i, scope) in val.0.into_iter().enumerate() {
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
            Some(bytes) => unsafe { copy_buffer(env, &bytes) },
            None => unsafe { ToNapiValue::to_napi_value(env, napi::bindgen_prelude::Null) },
        }
    }
}
