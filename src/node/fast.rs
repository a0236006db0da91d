//! Lean entry points for `set`, the call a build makes once per cached item
//! (≈ 100 000 times in one save of a 10 000-module app).
//!
//! The `#[napi]` method `PackStorage::set` stays the definition: its doc
//! comment and signature make the typings, and `binding::set_on` does the
//! work. Two raw N-API callbacks reach it for less than the generated wrapper
//! (callgrind, instructions per call in the addon: 6 529 generated, 4 344
//! prototype, 2 534 bound):
//!
//! - Each instance gets its own `set` (non-enumerable), created by the
//!   constructor, whose callback data is a strong reference to the store: no
//!   receiver to look up and check, so a `set` read off an instance keeps
//!   writing to that instance, whatever `this` it is called with. The
//!   reference is released when the function is collected. Instances of a
//!   subclass that overrides `set` get none (it would shadow the override).
//! - `PackStorage.prototype.set`, for calls that name the prototype's method,
//!   skips the generated wrapper's per-call borrow bookkeeping (there to keep
//!   a reentrant `&mut self` call from freeing what another still reads;
//!   `PackStorage` has no `&mut self` method and is only freed by its
//!   finalizer, which cannot run while `this` is being called). It checks the
//!   receiver with napi-rs's own unwrap (class type tag), since a method
//!   installed this way carries no V8 signature check.

use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::Arc;

use napi::bindgen_prelude::{panic_to_error, CallbackInfo, FromNapiValue, JsError, JsObjectValue, Object, Unknown};
use napi::{check_status, sys, Env, JsValue, Result};
use napi_derive::napi;

use crate::engine::Store;
use crate::node::binding::{set_on, PackStorage};
use crate::node::js_errors;

/// # Safety
/// `env` and `info` are those of the current callback (the prototype's `set`).
unsafe fn set_call(env: sys::napi_env, info: sys::napi_callback_info) -> Result<()> {
    let mut cb = CallbackInfo::<3>::new(env, info, None, false)?;
    // SAFETY: the unwrap checks the receiver's class tag before any cast.
    let Ok(this) = (unsafe { cb.unwrap_raw::<PackStorage>() }) else {
        return Err(js_errors::type_error(&Env::from(env), "set must be called on a PackStorage"));
    };
    // SAFETY: `unwrap_raw` checked the receiver's class; the instance lives
    // at least as long as this call (see the module comment).
    let this = unsafe { &*this };
    // SAFETY: each argument is a live value of this call.
    let arg = |i| unsafe { Unknown::from_napi_value(env, cb.get_arg(i)) };
    this.set(Env::from(env), arg(0)?, arg(1)?, arg(2)?)
}

/// # Safety
/// `env` and `info` are those of the current callback (a bound `set`).
unsafe fn bound_set_call(env: sys::napi_env, info: sys::napi_callback_info) -> Result<()> {
    let mut argc = 3usize; // missing arguments read as `undefined`
    let mut argv = [null_mut(); 3];
    let mut data = null_mut();
    // SAFETY: `argv` has room for `argc` values; out-pointers are valid.
    check_status!(unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), null_mut(), &mut data) })?;
    // SAFETY: `data` is the `Arc<Store>` that `bind_set` leaked into this
    // function; it is released only by the function's finalizer.
    let store = unsafe { &*data.cast::<Store>() };
    // SAFETY: each argument is a live value of this call.
    let arg = |i: usize| unsafe { Unknown::from_napi_value(env, argv[i]) };
    set_on(store, &Env::from(env), &arg(0)?, &arg(1)?, &arg(2)?)
}

/// Runs `call`, turning its error or panic into a thrown JS error.
///
/// # Safety
/// `env` is the env of the current callback.
unsafe fn guarded(env: sys::napi_env, call: impl FnOnce() -> Result<()>) -> sys::napi_value {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
    if let Err(e) = caught.unwrap_or_else(|p| Err(panic_to_error(p))) {
        // SAFETY: as the caller promises.
        unsafe { JsError::from(e).throw_into(env) };
    }
    null_mut() // undefined
}

/// # Safety
/// Called by N-API only, as the prototype's `set`.
unsafe extern "C" fn set(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: N-API passes this callback's env and info.
    unsafe { guarded(env, || set_call(env, info)) }
}

/// # Safety
/// Called by N-API only, as an instance's bound `set`.
unsafe extern "C" fn bound_set(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: N-API passes this callback's env and info.
    unsafe { guarded(env, || bound_set_call(env, info)) }
}

/// # Safety
/// Called by N-API only, as the finalizer of a bound `set`, with the data
/// `bind_set` gave it.
unsafe extern "C" fn release_store(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: the reference `bind_set` leaked; finalizers run once.
    drop(unsafe { Arc::from_raw(data.cast_const().cast::<Store>()) });
}

/// Marks the prototype's `set`, so a constructor can tell it from a
/// subclass's (or anyone's) replacement.
const PROTOTYPE_SET: sys::napi_type_tag =
    sys::napi_type_tag { lower: 0x7061_636b_6361_6368, upper: 0x652e_7365_742e_7631 };

/// Whether `instance.set` is still the prototype's lean `set`.
fn inherits_our_set(env: &Env, instance: &Object) -> Result<bool> {
    let mut current = null_mut();
    // SAFETY: `instance` is a live object of this env; the name is NUL-terminated.
    check_status!(unsafe { sys::napi_get_named_property(env.raw(), instance.raw(), c"set".as_ptr(), &mut current) })?;
    // Anything but a function (say, `undefined`) is not ours, and must not
    // reach the tag check: converting it to an object would throw.
    let mut kind = sys::ValueType::napi_undefined;
    // SAFETY: `current` was just returned for this env.
    check_status!(unsafe { sys::napi_typeof(env.raw(), current, &mut kind) })?;
    if kind != sys::ValueType::napi_function {
        return Ok(false);
    }
    let mut ours = false;
    // SAFETY: `current` is a function (checked above), so an object.
    check_status!(unsafe { sys::napi_check_object_type_tag(env.raw(), current, &PROTOTYPE_SET, &mut ours) })?;
    Ok(ours)
}

/// Defines `instance.set` (writable, configurable, not enumerable), bound
/// to `store` — unless a subclass overrides `set`: an own property would
/// shadow the override, so such instances keep calling it.
pub fn bind_set(env: &Env, instance: &Object, store: &Arc<Store>) -> Result<()> {
    if !inherits_our_set(env, instance)? {
        return Ok(());
    }
    let data = Arc::into_raw(store.clone()).cast_mut().cast::<c_void>();
    let mut function = null_mut();
    // SAFETY: the name is NUL-terminated, 3 bytes; `data` lives until the
    // finalizer added next releases it.
    let created = check_status!(unsafe {
        sys::napi_create_function(env.raw(), c"set".as_ptr(), 3, Some(bound_set), data, &mut function)
    })
    .and_then(|()| {
        // SAFETY: `function` was just made in this env.
        check_status!(unsafe {
            sys::napi_add_finalizer(env.raw(), function, data, Some(release_store), null_mut(), null_mut())
        })
    });
    if let Err(e) = created {
        // SAFETY: no finalizer took `data`: it is released here, once.
        unsafe { release_store(env.raw(), data, null_mut()) };
        return Err(e);
    }
    define_set(env, instance.raw(), function)
}

fn define_set(env: &Env, target: sys::napi_value, function: sys::napi_value) -> Result<()> {
    crate::node::receiver::define_method(env, target, c"set", function)
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
    // SAFETY: the name is NUL-terminated; `set` needs no data.
    check_status!(unsafe {
        sys::napi_create_function(env.raw(), c"set".as_ptr(), 3, Some(set), null_mut(), &mut function)
    })?;
    // SAFETY: `function` was just made in this env.
    check_status!(unsafe { sys::napi_type_tag_object(env.raw(), function, &PROTOTYPE_SET) })?;
    define_set(&env, prototype.raw(), function)?;
    crate::node::receiver::install(&env, &prototype)
}
