//! Prototype methods that check their receiver themselves. `napi_define_class`
//! gives each method a V8 signature, so `PackStorage.prototype.load.call({})`
//! throws V8's uncoded "Illegal invocation". Each method is replaced by a
//! function that checks `this` with napi-rs's unwrap (class type tag) and
//! throws a coded `TypeError` on a foreign receiver, else calls the
//! generated method with the same `this` and arguments.

use std::ffi::{c_void, CStr, CString};
use std::ptr::null_mut;

use napi::bindgen_prelude::{CallbackInfo, JsObjectValue, Object};
use napi::{check_status, sys, Env, JsValue, Result};

use crate::node::binding::PackStorage;
use crate::node::js_errors;

/// The generated methods (JS names) that get a checked replacement. `set`
/// has its own lean entry points (`fast.rs`).
const METHODS: [&str; 12] = [
    "load",
    "loadMany",
    "loadColumns",
    "get",
    "getMany",
    "keys",
    "remove",
    "save",
    "reset",
    "scopes",
    "close",
    "loadStats",
];

/// Most arguments any of `METHODS` takes.
const MAX_ARGS: usize = 2;

/// The generated method a replacement calls, and its JS name.
struct Original {
    function: sys::napi_ref,
    name: &'static str,
}

/// # Safety
/// Called by N-API only, as one of the replaced methods.
unsafe extern "C" fn checked_call(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc = MAX_ARGS;
    let mut argv = [null_mut(); MAX_ARGS];
    let mut this = null_mut();
    let mut data = null_mut();
    // SAFETY: `info` is this callback's; `argv` has room for `argc` values.
    let status = unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), &mut this, &mut data) };
    if status != sys::Status::napi_ok {
        return null_mut(); // N-API left its own exception pending
    }
    // SAFETY: `data` is the `Original` that `install` leaked into this
    // function for the life of the module.
    let original = unsafe { &*data.cast::<Original>() };
    let checked = CallbackInfo::<MAX_ARGS>::new(env, info, None, false)
        // SAFETY: the unwrap checks the receiver's class tag before any cast.
        .and_then(|mut cb| unsafe { cb.unwrap_raw::<PackStorage>() }.map(|_| ()));
    if checked.is_err() {
        let message = format!("{} must be called on a PackStorage", original.name);
        // SAFETY: `env` is this callback's env.
        unsafe { throw(env, js_errors::type_error(&Env::from(env), &message)) };
        return null_mut();
    }
    let mut function = null_mut();
    let mut out = null_mut();
    // SAFETY: the reference is alive (never deleted); `this` and `argv` come
    // from this call.
    let status = unsafe {
        match sys::napi_get_reference_value(env, original.function, &mut function) {
            sys::Status::napi_ok => {
                sys::napi_call_function(env, this, function, argc.min(MAX_ARGS), argv.as_ptr(), &mut out)
            }
            other => other,
        }
    };
    // A method that threw left its exception pending: the caller sees it.
    // Any other failure is thrown here.
    if status != sys::Status::napi_ok && status != sys::Status::napi_pending_exception {
        let message = format!("{}: N-API status {status}", original.name);
        // SAFETY: `env` is this callback's env.
        unsafe { throw(env, napi::Error::new(napi::Status::GenericFailure, message)) };
    }
    out
}

/// # Safety
/// `env` is the env of the current callback.
unsafe fn throw(env: sys::napi_env, error: napi::Error) {
    // SAFETY: as the caller promises.
    unsafe { napi::bindgen_prelude::JsError::from(error).throw_into(env) };
}

/// Replaces each of `METHODS` on `prototype` by its receiver-checking twin.
pub fn install(env: &Env, prototype: &Object) -> Result<()> {
    for name in METHODS {
        let generated: napi::bindgen_prelude::Unknown = prototype.get_named_property(name)?;
        let mut function = null_mut();
        // SAFETY: `generated` is a live value of this env.
        check_status!(unsafe { sys::napi_create_reference(env.raw(), generated.raw(), 1, &mut function) })?;
        // Leaked: the replacement may be called until the module is unloaded.
        let data = Box::into_raw(Box::new(Original { function, name })).cast::<c_void>();
        let cname = CString::new(name).expect("method names have no NUL");
        let mut replacement = null_mut();
        // SAFETY: `cname` is a NUL-terminated name of the given length.
        check_status!(unsafe {
            sys::napi_create_function(
                env.raw(),
                cname.as_ptr(),
                name.len() as isize,
                Some(checked_call),
                data,
                &mut replacement,
            )
        })?;
        define_method(env, prototype.raw(), &cname, replacement)?;
    }
    Ok(())
}

/// Defines `target[name] = function` as a method: writable, configurable,
/// not enumerable (as `napi_define_class` defines them).
pub(crate) fn define_method(env: &Env, target: sys::napi_value, name: &CStr, function: sys::napi_value) -> Result<()> {
    let property = sys::napi_property_descriptor {
        utf8name: name.as_ptr(),
        name: null_mut(),
        method: None,
        getter: None,
        setter: None,
        value: function,
        attributes: sys::PropertyAttributes::writable | sys::PropertyAttributes::configurable,
        data: null_mut(),
    };
    // SAFETY: `target` is a live object of this env; `name` outlives the call.
    check_status!(unsafe { sys::napi_define_properties(env.raw(), target, 1, &property) })
}
