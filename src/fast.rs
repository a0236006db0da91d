//! A lean entry point for `set`, the call a build makes once per cached item
//! (≈ 100 000 times in one save of a 10 000-module app).
//!
//! The `#[napi]` method `PackStorage::set` stays the definition: its doc
//! comment and signature make the typings, and it does the work. When the
//! module loads, the prototype's `set` is replaced by a raw N-API callback
//! that calls that same method, minus the per-call borrow bookkeeping the
//! generated wrapper does for every method (callgrind: ≈ 2 100 of ≈ 6 500
//! instructions per `set`). That bookkeeping keeps a reentrant `&mut self`
//! call from freeing what another call still reads; `PackStorage` has no
//! `&mut self` method and is only ever freed by its finalizer, which cannot
//! run while `this` is being called. The receiver is still checked by
//! napi-rs's own unwrap (class type tag), since a method installed this way
//! carries no V8 signature check.

use std::ptr::null_mut;

use napi::bindgen_prelude::{panic_to_error, CallbackInfo, FromNapiValue, JsError, JsObjectValue, Object, Unknown};
use napi::{check_status, sys, Env, JsValue, Result};
use napi_derive::napi;

use crate::binding::PackStorage;
use crate::js_errors;

unsafe fn set_call(env: sys::napi_env, info: sys::napi_callback_info) -> Result<()> {
    let mut cb = CallbackInfo::<3>::new(env, info, None, false)?;
    let Ok(this) = (unsafe { cb.unwrap_raw::<PackStorage>() }) else {
        return Err(js_errors::type_error(&Env::from(env), "set must be called on a PackStorage"));
    };
    // SAFETY: `unwrap_raw` checked the receiver's class; the instance lives
    // at least as long as this call (see the module comment).
    let this = unsafe { &*this };
    let arg = |i| unsafe { Unknown::from_napi_value(env, cb.get_arg(i)) };
    this.set(Env::from(env), arg(0)?, arg(1)?, arg(2)?)
}

unsafe extern "C" fn set(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { set_call(env, info) }));
    if let Err(e) = caught.unwrap_or_else(|p| Err(panic_to_error(p))) {
        unsafe { JsError::from(e).throw_into(env) };
    }
    null_mut() // undefined
}

/// Installs the lean `set` on `PackStorage.prototype`, replacing the
/// generated one (same name, attributes and work; a foreign receiver gets a
/// `TypeError` with our code instead of V8's "Illegal invocation").
#[napi(module_exports)]
pub fn install_fast_calls(exports: Object, env: Env) -> Result<()> {
    // The class is a function: read it as an object without the type check.
    let class: Object = exports.get_named_property_unchecked("PackStorage")?;
    let prototype: Object = class.get_named_property("prototype")?;
    let mut function = null_mut();
    // 3: the byte length of the name.
    check_status!(unsafe {
        sys::napi_create_function(env.raw(), c"set".as_ptr(), 3, Some(set), null_mut(), &mut function)
    })?;
    let property = sys::napi_property_descriptor {
        utf8name: c"set".as_ptr(),
        name: null_mut(),
        method: None,
        getter: None,
        setter: None,
        value: function,
        attributes: sys::PropertyAttributes::writable | sys::PropertyAttributes::configurable,
        data: null_mut(),
    };
    check_status!(unsafe { sys::napi_define_properties(env.raw(), prototype.raw(), 1, &property) })
}
