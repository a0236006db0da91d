//! Streaming loads. Packs are verified and decoded on worker threads; each
//! decoded pack crosses to the JS thread through a threadsafe function and
//! becomes its pairs there at once, so conversion overlaps decoding and no
//! single JS task converts the whole load.
//!
//! A pack becomes a Buffer over its bytes (the private mapping when stored
//! raw, else the decoded buffer) plus a typed array of offsets; a small JS
//! helper, compiled once per thread, slices it into `[key, value]` Buffers
//! with `subarray` — views, not copies, and no backing store per value.
//! The load's shared memory (its region of decoded packs, its group of
//! mapped ones) becomes one Buffer, or, past the largest Buffer Node can
//! make, several windows of it: a pack is never split across two.
//!
//! Shutdown: a worker thread's environment can go away mid-load
//! (`worker.terminate()`). The load's threads reach the JS thread only
//! through a [`Link`], which the environment's cleanup hook and the
//! threadsafe function's finalizer close under its lock: after that no
//! thread calls into a function N-API is about to free.

use std::cell::RefCell;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::{Arc, Mutex};

use napi::{check_status, sys, Env, Result};

use crate::engine::pairs::{Bytes, LoadEvent};
use crate::engine::{Error, Store};
use crate::node::convert::copied;
use crate::node::js_errors;

const HELPERS: &str = r#"(() => {
  // Converts queued packs into pairs in slices of at most SLICE_MS, yielding
  // to the event loop between slices, then settles each load's promise. One
  // queue and one pump serve every load of this thread, so any number of
  // concurrent loads together hold the thread for one slice per turn.
  // Node's Buffer class proper (what `subarray` builds through species
  // lookup), constructed directly: the same Buffer views, faster. Falls
  // back to `subarray` where it is not what this expects.
  const Species = Buffer[Symbol.species]
  const FastBuffer = typeof Species === 'function' && Buffer.isBuffer(new Species(new ArrayBuffer(2), 1, 1)) ? Species : null
  const SLICE_MS = 3
  const STEP = 512
  const queue = []
  let scheduled = false
  const convert = (job) => {
    const offs = job.offs
    const end = Math.min(offs.length, job.at + STEP * 4)
    const ab = job.buf.buffer
    const base = job.buf.byteOffset
    const out = job.st.parts[job.scope][job.seq]
    if (FastBuffer) {
      for (let i = job.at; i < end; i += 4) {
        out[i >> 2] = [new FastBuffer(ab, base + offs[i], offs[i + 1] - offs[i]), new FastBuffer(ab, base + offs[i + 2], offs[i + 3] - offs[i + 2])]
      }
    } else {
      const buf = job.buf
      for (let i = job.at; i < end; i += 4) out[i >> 2] = [buf.subarray(offs[i], offs[i + 1]), buf.subarray(offs[i + 2], offs[i + 3])]
    }
    job.at = end
    return end === offs.length
  }
  const pump = () => {
    scheduled = false
    const t0 = performance.now()
    while (queue.length > 0 && performance.now() - t0 < SLICE_MS) {
      const job = queue[0]
      if (!convert(job)) continue
      queue.shift()
      if (--job.st.queued === 0 && job.st.ended) settle(job.st)
    }
    if (queue.length > 0) schedule()
  }
  const schedule = () => {
    if (!scheduled) {
      scheduled = true
      setImmediate(pump)
    }
  }
  const settle = (st) => {
    if (st.error) return st.reject(st.error)
    if (st.columns) return st.resolve(st.parts.map((parts) => parts.filter(Boolean)))
    const joined = st.parts.map((parts) => {
      if (parts.length === 1 && parts[0]) return parts[0]
      let n = 0
      for (const p of parts) if (p) n += p.length
      const out = new Array(n)
      let k = 0
      for (const p of parts) if (p) for (let j = 0; j < p.length; j++) out[k++] = p[j]
      return out
    })
    st.resolve(st.single ? joined[0] : joined)
  }
  return {
    // The largest Buffer this Node can make (older ones lack getBuiltinModule:
    // a smaller guess only splits a load into more Buffers).
    maxLength: globalThis.process?.getBuiltinModule?.('buffer')?.constants?.MAX_LENGTH ?? 2 ** 31 - 1,
    start(scopes, single, columns) {
      const st = { parts: Array.from({ length: scopes }, () => []), queued: 0, single, columns, ended: false, error: null }
      st.promise = new Promise((resolve, reject) => ((st.resolve = resolve), (st.reject = reject)))
      return st
    },
    push(st, scope, seq, buf, offs) {
      if (st.error) return
      if (st.columns) {
        st.parts[scope][seq] = { buffer: buf, offsets: offs }
        return
      }
      // Sized up front: filled in place, never regrown.
      st.parts[scope][seq] = new Array(offs.length >> 2)
      st.queued++
      queue.push({ st, scope, seq, buf, offs, at: 0 })
      schedule()
    },
    fail(st, error) {
      if (!st.error) st.error = error
      for (let i = queue.length - 1; i >= 0; i--) if (queue[i].st === st) queue.splice(i, 1)
      st.queued = 0
    },
    end(st) {
      st.ended = true
      if (st.queued === 0) settle(st)
    },
  }
})()"#;

thread_local! {
    /// The helper object per JS thread (each env lives on its own thread).
    static HELPER: RefCell<Option<(usize, sys::napi_ref)>> = const { RefCell::new(None) };
}

/// The helper object of `env`'s thread, compiled on first use.
///
/// # Safety
/// `env` is the env of the current thread, inside a call from JS or a
/// threadsafe function's callback.
unsafe fn helper_object(env: sys::napi_env) -> Result<sys::napi_value> {
    let cached = HELPER.with(|h| *h.borrow()).filter(|(e, _)| *e == env as usize);
    if let Some((_, r)) = cached {
        // SAFETY: the reference was made for this env and is never deleted.
        return unsafe { get_ref(env, r) };
    }
    let mut src = null_mut();
    let mut object = null_mut();
    let mut r = null_mut();
    // SAFETY: `HELPERS` is valid UTF-8 of the given length; out-pointers are valid.
    unsafe {
        check_status!(sys::napi_create_string_utf8(env, HELPERS.as_ptr().cast(), HELPERS.len() as isize, &mut src))?;
        check_status!(sys::napi_run_script(env, src, &mut object))?;
        check_status!(sys::napi_create_reference(env, object, 1, &mut r))?;
    }
    HELPER.with(|h| *h.borrow_mut() = Some((env as usize, r)));
    Ok(object)
}

/// Calls the helper's method `name` with `args`.
///
/// # Safety
/// As `helper_object`; `args` are live values of `env`.
unsafe fn call(env: sys::napi_env, name: &std::ffi::CStr, args: &[sys::napi_value]) -> Result<sys::napi_value> {
    // SAFETY: as the caller promises.
    let this = unsafe { helper_object(env)? };
    let mut f = null_mut();
    let mut out = null_mut();
    // SAFETY: `this` is the helper object; `name` is NUL-terminated.
    unsafe {
        check_status!(sys::napi_get_named_property(env, this, name.as_ptr(), &mut f))?;
        check_status!(sys::napi_call_function(env, this, f, args.len(), args.as_ptr(), &mut out))?;
    }
    Ok(out)
}

/// The largest Buffer this Node can make, in bytes.
///
/// # Safety
/// As `helper_object`.
unsafe fn max_buffer_len(env: sys::napi_env) -> Result<usize> {
    // SAFETY: as the caller promises.
    let this = unsafe { helper_object(env)? };
    let (mut v, mut n) = (null_mut(), 0f64);
    // SAFETY: `this` is the helper object; `maxLength` is a number on it.
    unsafe {
        check_status!(sys::napi_get_named_property(env, this, c"maxLength".as_ptr(), &mut v))?;
        check_status!(sys::napi_get_value_double(env, v, &mut n))?;
    }
    Ok(if n >= 1.0 { n.min(usize::MAX as f64) as usize } else { i32::MAX as usize })
}

/// Finalizer of an external Buffer: drops what kept its memory alive.
///
/// # Safety
/// Called by N-API only, with the hint `external` gave it.
unsafe extern "C" fn release_bytes(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the box `external` leaked; N-API finalizes once.
    drop(unsafe { Box::from_raw(hint.cast::<Bytes>()) });
}

/// A Buffer over `len` bytes at `ptr` without a copy, which `keep` keeps
/// alive; `Err(keep)` back where external memory is refused (e.g.
/// Electron), for the caller to copy.
///
/// # Safety
/// `env` as for `helper_object`; `ptr..ptr + len` lies in memory that
/// `keep` owns and keeps mapped; `len` is at most `max_buffer_len`.
unsafe fn external(
    env: sys::napi_env,
    ptr: *const u8,
    len: usize,
    keep: Bytes,
) -> Result<std::result::Result<sys::napi_value, Bytes>> {
    let mut out = null_mut();
    if len == 0 {
        let mut data = null_mut();
        // SAFETY: out-pointers are valid.
        check_status!(unsafe { sys::napi_create_buffer(env, 0, &mut data, &mut out) })?;
        return Ok(Ok(out));
    }
    let hint = Box::into_raw(Box::new(keep));
    // SAFETY: the bytes live until `release_bytes` drops the box owning
    // them (see the function's contract).
    let status = unsafe {
        sys::napi_create_external_buffer(env, len, ptr.cast_mut().cast(), Some(release_bytes), hint.cast(), &mut out)
    };
    match status {
        sys::Status::napi_ok => Ok(Ok(out)),
        // Refused before Node took the hint: it is still ours.
        // SAFETY: the box leaked above, not handed to anyone.
        sys::Status::napi_no_external_buffers_allowed => Ok(Err(*unsafe { Box::from_raw(hint) })),
        // Node may already have run (or scheduled) the finalizer on the
        // hint: freeing it here too would free it twice. At worst it leaks.
        other => check_status!(other, "cannot make a Buffer of {} bytes", len).map(|()| Ok(out)),
    }
}

/// A Buffer made over a window `start..end` of a load's shared memory
/// (whose mapping starts at `base`).
struct Window {
    base: usize,
    start: usize,
    end: usize,
    buffer: sys::napi_ref,
}

/// The lowest and highest offset of a part's pairs.
fn span(offsets: &[usize]) -> (usize, usize) {
    match (offsets.iter().min(), offsets.iter().max()) {
        (Some(&lo), Some(&hi)) => (lo, hi),
        _ => (0, 0),
    }
}

/// The start and length of the shared memory a part's offsets index, if any.
fn shared_memory(bytes: &Bytes) -> Option<(*const u8, usize)> {
    match bytes {
        Bytes::Region(slot) => Some(slot.region().raw_parts()),
        Bytes::Group(blob) => {
            let all = (**blob).as_ref();
            Some((all.as_ptr(), all.len()))
        }
        Bytes::Mapped(_) | Bytes::Owned(_) => None,
    }
}

/// The Buffer a part's pairs slice, and their offsets into it; `None` when
/// the part alone is larger than any Buffer can be.
///
/// # Safety
/// As `helper_object`.
unsafe fn part_buffer(
    env: sys::napi_env,
    ctx: &mut Ctx,
    bytes: Bytes,
    mut offsets: Vec<usize>,
) -> Result<Option<(sys::napi_value, Vec<usize>)>> {
    if offsets.is_empty() {
        // No live pair: nothing to point into.
        // SAFETY: `env` as for this function.
        return Ok(Some((unsafe { copied(env, &[])? }, offsets)));
    }
    let (lo, hi) = span(&offsets);
    if hi - lo > ctx.max_len {
        return Ok(None);
    }
    let Some((ptr, total)) = shared_memory(&bytes) else {
        let (ptr, len) = (bytes.as_slice().as_ptr(), bytes.as_slice().len());
        if len > ctx.max_len {
            return Ok(None);
        }
        // SAFETY: the bytes are `bytes`' own, kept alive by it.
        let buffer = match unsafe { external(env, ptr, len, bytes)? } {
            Ok(buffer) => buffer,
            // SAFETY: `env` as for this function.
            Err(bytes) => unsafe { copied(env, bytes.as_slice())? },
        };
        return Ok(Some((buffer, offsets)));
    };
    let found = ctx.windows.iter().find(|w| w.base == ptr as usize && w.start <= lo && hi <= w.end);
    if let Some(w) = found {
        offsets.iter_mut().for_each(|o| *o -= w.start);
        // SAFETY: the window's reference lives as long as `ctx`.
        return Ok(Some((unsafe { get_ref(env, w.buffer)? }, offsets)));
    }
    let bytes = match ctx.no_external {
        true => bytes,
        false => {
            // One Buffer over all of it when it fits, else a window from this part on.
            let start = if total <= ctx.max_len { 0 } else { lo };
            let end = total.min(start + ctx.max_len);
            // SAFETY: `start..end` lies in the shared memory, which `bytes` keeps alive.
            match unsafe { external(env, ptr.add(start), end - start, bytes)? } {
                Ok(buffer) => {
                    let mut r = null_mut();
                    // SAFETY: `buffer` was just made in this env.
                    check_status!(unsafe { sys::napi_create_reference(env, buffer, 1, &mut r) })?;
                    ctx.windows.push(Window { base: ptr as usize, start, end, buffer: r });
                    offsets.iter_mut().for_each(|o| *o -= start);
                    return Ok(Some((buffer, offsets)));
                }
                Err(bytes) => {
                    ctx.no_external = true;
                    bytes
                }
            }
        }
    };
    // Copies just the part's span (its own, fully written slot).
    let base = bytes.base();
    // SAFETY: `env` as for this function.
    let buffer = unsafe { copied(env, &bytes.as_slice()[lo - base..hi - base])? };
    offsets.iter_mut().for_each(|o| *o -= lo);
    Ok(Some((buffer, offsets)))
}

/// The offsets as a typed array: `Uint32Array` (half the memory) when they
/// all fit, else `Float64Array` (exact up to 2^53).
///
/// # Safety
/// As `helper_object`.
unsafe fn offsets_array(env: sys::napi_env, values: &[usize]) -> Result<sys::napi_value> {
    let narrow = values.iter().all(|&v| v <= u32::MAX as usize);
    let (kind, width) = match narrow {
        true => (sys::TypedarrayType::uint32_array, 4),
        false => (sys::TypedarrayType::float64_array, 8),
    };
    let mut data = null_mut();
    let mut ab = null_mut();
    // SAFETY: out-pointers are valid.
    check_status!(unsafe { sys::napi_create_arraybuffer(env, values.len() * width, &mut data, &mut ab) })?;
    if !values.is_empty() {
        // SAFETY: the array buffer was just created with room for every value.
        let out = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), values.len() * width) };
        match narrow {
            true => {
                out.chunks_exact_mut(4).zip(values).for_each(|(o, &v)| o.copy_from_slice(&(v as u32).to_ne_bytes()))
            }
            false => {
                out.chunks_exact_mut(8).zip(values).for_each(|(o, &v)| o.copy_from_slice(&(v as f64).to_ne_bytes()))
            }
        }
    }
    let mut out = null_mut();
    // SAFETY: `ab` holds `values.len()` elements of `kind`.
    check_status!(unsafe { sys::napi_create_typedarray(env, kind, values.len(), ab, 0, &mut out) })?;
    Ok(out)
}

/// `Msg::Failed` scope for failures of the whole call.
const WHOLE_LOAD: usize = usize::MAX;

/// `Part::offsets`: each pair's key start, key end, value start, value end.
enum Msg {
    Part { scope: usize, seq: usize, bytes: Bytes, offsets: Vec<usize> },
    Failed { scope: usize, error: Error },
    Done,
}

struct Ctx {
    /// The JS helper's state object of this load (it owns the promise).
    state: sys::napi_ref,
    scopes: Vec<String>,
    failed: bool,
    ended: bool,
    /// Buffers made over the load's shared memory (its region, its group).
    windows: Vec<Window>,
    /// External buffers are refused here: parts are copied.
    no_external: bool,
    /// The largest Buffer this Node can make.
    max_len: usize,
    /// The load's link, closed by the finalizer too.
    link: Arc<Link>,
    /// The cleanup hook's argument (an `Arc<Link>`), removed and freed by the finalizer.
    hook: *const Link,
}

/// A threadsafe function, while it may be called.
#[derive(Clone, Copy)]
struct Tsfn(sys::napi_threadsafe_function);

// SAFETY: N-API threadsafe functions are made to be called from any thread.
unsafe impl Send for Tsfn {}

/// How a load's threads reach its JS thread; see the module comment.
struct Link(Mutex<Option<Tsfn>>);

impl Link {
    /// Queues `msg` for the JS thread; drops it once the link is closed.
    fn send(&self, msg: Msg) {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tsfn) = *open else { return };
        let data = Box::into_raw(Box::new(msg));
        // SAFETY: the function is alive: it is freed only after `close`,
        // which waits for this lock. With an unlimited queue, a blocking
        // call never blocks.
        let status = unsafe {
            sys::napi_call_threadsafe_function(tsfn.0, data.cast(), sys::ThreadsafeFunctionCallMode::blocking)
        };
        if status != sys::Status::napi_ok {
            // SAFETY: refused, so not queued: the box is still ours.
            drop(unsafe { Box::from_raw(data) });
            *open = None; // closing: it must not be called again
        }
    }

    /// No thread calls the function after this returns.
    fn close(&self) -> Option<Tsfn> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The load's thread is done with the function.
    fn release(&self) {
        if let Some(tsfn) = self.close() {
            // SAFETY: still open, so alive; released once (`close` took it).
            // A failed release means the function is closing anyway.
            unsafe { sys::napi_release_threadsafe_function(tsfn.0, sys::ThreadsafeFunctionReleaseMode::release) };
        }
    }
}

/// The environment is being torn down (a worker terminated): the function
/// will be freed without waiting for the load's threads.
///
/// # Safety
/// Called by N-API only, with the argument `load` registered.
unsafe extern "C" fn on_env_cleanup(arg: *mut c_void) {
    // SAFETY: `arg` is the `Arc<Link>` `load` leaked; only `finalize_ctx`
    // frees it, after removing this hook.
    let link = unsafe { &*arg.cast_const().cast::<Link>() };
    link.close();
}

/// # Safety
/// As `helper_object`; `r` is a live reference of `env`.
unsafe fn get_ref(env: sys::napi_env, r: sys::napi_ref) -> Result<sys::napi_value> {
    let mut v = null_mut();
    // SAFETY: as the caller promises.
    check_status!(unsafe { sys::napi_get_reference_value(env, r, &mut v) })?;
    Ok(v)
}

/// # Safety
/// As `helper_object`.
unsafe fn on_message(env: sys::napi_env, ctx: &mut Ctx, msg: Msg) -> Result<()> {
    // SAFETY: the state reference lives as long as `ctx`.
    let state = unsafe { get_ref(env, ctx.state)? };
    match msg {
        Msg::Part { scope, seq, bytes, offsets } if !ctx.failed => {
            let size = bytes.as_slice().len();
            // SAFETY: as the caller promises.
            match unsafe { part_buffer(env, ctx, bytes, offsets)? } {
                Some((buf, offsets)) => {
                    // SAFETY: as the caller promises; every argument is a value of `env`.
                    unsafe {
                        let args = [state, number(env, scope)?, number(env, seq)?, buf, offsets_array(env, &offsets)?];
                        call(env, c"push", &args)?;
                    }
                }
                None => {
                    let error = Error::InvalidArg(format!(
                        "a pack of {size} bytes is larger than the largest Buffer this Node can make ({} bytes); \
                         a smaller packSize keeps packs below it",
                        ctx.max_len
                    ));
                    // SAFETY: as the caller promises.
                    unsafe { on_message(env, ctx, Msg::Failed { scope, error })? };
                }
            }
        }
        Msg::Part { .. } => {}
        Msg::Failed { scope, error } => {
            if !ctx.failed {
                ctx.failed = true;
                let error = match ctx.scopes.get(scope) {
                    Some(name) => js_errors::in_scope(name, error),
                    None => error,
                };
                let obj = js_errors::error_object(env, false, error.code(), &error.to_string());
                // SAFETY: as the caller promises.
                unsafe { call(env, c"fail", &[state, obj])? };
            }
        }
        Msg::Done => {
            ctx.ended = true;
            // SAFETY: as the caller promises.
            unsafe { call(env, c"end", &[state])? };
        }
    }
    Ok(())
}

/// # Safety
/// As `helper_object`.
unsafe fn number(env: sys::napi_env, n: usize) -> Result<sys::napi_value> {
    let mut out = null_mut();
    // SAFETY: the out-pointer is valid.
    check_status!(unsafe { sys::napi_create_double(env, n as f64, &mut out) })?;
    Ok(out)
}

/// Delivers one message on the JS thread.
///
/// # Safety
/// Called by N-API only, with the load's `Ctx` and a message `Link::send` queued.
unsafe extern "C" fn call_js(env: sys::napi_env, _cb: sys::napi_value, context: *mut c_void, data: *mut c_void) {
    // SAFETY: `data` is a box `Link::send` queued; each is delivered once.
    let msg = *unsafe { Box::from_raw(data.cast::<Msg>()) };
    if env.is_null() {
        return; // the environment is shutting down
    }
    // SAFETY: `context` is the load's `Ctx`, freed only by `finalize_ctx`,
    // which runs after the last call.
    let ctx = unsafe { &mut *context.cast::<Ctx>() };
    if ctx.ended {
        return;
    }
    // SAFETY: called by N-API on the JS thread of `env`.
    if let Err(e) = unsafe { on_message(env, ctx, msg) } {
        // Settle the promise even when N-API or the helper failed; a thrown
        // JS exception must not stay pending (it would surface as uncaught).
        let mut pending = false;
        // SAFETY: as above; out-pointers are valid.
        unsafe {
            if sys::napi_is_exception_pending(env, &mut pending) == sys::Status::napi_ok && pending {
                let mut ignored = null_mut();
                sys::napi_get_and_clear_last_exception(env, &mut ignored);
            }
        }
        let error = Error::Internal(format!("converting a load failed: {e}"));
        // SAFETY: as above.
        let _ = unsafe { on_message(env, ctx, Msg::Failed { scope: WHOLE_LOAD, error }) };
        // SAFETY: as above.
        let _ = unsafe { on_message(env, ctx, Msg::Done) };
        ctx.ended = true;
    }
}

/// Frees the load's `Ctx` once the function is gone.
///
/// # Safety
/// Called by N-API only, once, with the `Ctx` `load` gave the function.
unsafe extern "C" fn finalize_ctx(env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Ctx` `load` leaked; N-API finalizes once.
    let ctx = unsafe { Box::from_raw(data.cast::<Ctx>()) };
    ctx.link.close();
    if env.is_null() {
        return; // no env to remove the hook from: its argument stays (a leak, not a dangling pointer)
    }
    // SAFETY: the references and the hook were made in this env; the hook's
    // argument is freed only once it is removed, so the hook never sees it
    // freed. A reference that fails to delete goes with the env.
    unsafe {
        sys::napi_delete_reference(env, ctx.state);
        for w in &ctx.windows {
            sys::napi_delete_reference(env, w.buffer);
        }
        let hook = ctx.hook.cast_mut().cast::<c_void>();
        if sys::napi_remove_env_cleanup_hook(env, Some(on_env_cleanup), hook) == sys::Status::napi_ok {
            drop(Arc::from_raw(ctx.hook));
        }
    }
}

/// How a load hands its result to JS.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `Array<[Buffer, Buffer]>` of the one scope.
    Pairs,
    /// One such array per scope.
    PairsPerScope,
    /// Per scope, its parts as `{ buffer, offsets }`: no JS object per pair.
    Columns,
}

/// Starts loading `scopes` and returns the Promise of their result, shaped
/// as `shape` says.
pub fn load(env: &Env, store: Arc<Store>, scopes: Vec<String>, shape: Shape) -> Result<sys::napi_value> {
    let raw = env.raw();
    // SAFETY: called from JS on `env`'s thread.
    let (promise, state_ref, max_len) = unsafe { start_state(raw, scopes.len(), shape)? };
    let link = Arc::new(Link(Mutex::new(None)));
    let hook = Arc::into_raw(link.clone());
    let ctx = Box::into_raw(Box::new(Ctx {
        state: state_ref,
        scopes: scopes.clone(),
        failed: false,
        ended: false,
        windows: Vec::new(),
        no_external: false,
        max_len,
        link: link.clone(),
        hook,
    }));
    // SAFETY: `ctx` is handed to the function, which frees it in `finalize_ctx`.
    let tsfn = match unsafe { create_tsfn(raw, ctx) } {
        Ok(tsfn) => tsfn,
        Err(e) => {
            // SAFETY: not handed to anyone: still ours.
            let ctx = unsafe { Box::from_raw(ctx) };
            // SAFETY: made in this env above; the `Arc` leaked for the hook.
            unsafe {
                sys::napi_delete_reference(raw, ctx.state);
                drop(Arc::from_raw(ctx.hook));
            }
            return Err(e);
        }
    };
    *link.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(tsfn);
    // Added after the function: hooks run in reverse order of addition, so
    // this one closes the link before N-API's own hook frees the function.
    // SAFETY: `hook` stays valid until `finalize_ctx` removes the hook.
    let hooked = unsafe { sys::napi_add_env_cleanup_hook(raw, Some(on_env_cleanup), hook.cast_mut().cast()) };
    if hooked != sys::Status::napi_ok {
        link.release();
        return check_status!(hooked).map(|()| promise);
    }
    let thread_link = link.clone();
    let spawned = std::thread::Builder::new().name("packcache-load".into()).spawn(move || {
        let link = thread_link;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&store, &scopes, &link)));
        if let Err(p) = result {
            let error = Error::Internal(crate::engine::error::panic_message(&p));
            link.send(Msg::Failed { scope: WHOLE_LOAD, error });
        }
        link.send(Msg::Done);
        link.release();
    });
    if let Err(e) = spawned {
        link.release();
        return Err(napi::Error::from_reason(format!("cannot start a load thread: {e}")));
    }
    Ok(promise)
}

/// The helper's state object of a new load: its promise, a reference to
/// it, and the largest Buffer this Node can make.
///
/// # Safety
/// As `helper_object`.
unsafe fn start_state(
    raw: sys::napi_env,
    scopes: usize,
    shape: Shape,
) -> Result<(sys::napi_value, sys::napi_ref, usize)> {
    let (mut single, mut columns, mut promise, mut state_ref) = (null_mut(), null_mut(), null_mut(), null_mut());
    // SAFETY: as the caller promises; out-pointers are valid.
    unsafe {
        check_status!(sys::napi_get_boolean(raw, shape == Shape::Pairs, &mut single))?;
        check_status!(sys::napi_get_boolean(raw, shape == Shape::Columns, &mut columns))?;
        let state = call(raw, c"start", &[number(raw, scopes)?, single, columns])?;
        check_status!(sys::napi_get_named_property(raw, state, c"promise".as_ptr(), &mut promise))?;
        let max_len = max_buffer_len(raw)?;
        check_status!(sys::napi_create_reference(raw, state, 1, &mut state_ref))?;
        Ok((promise, state_ref, max_len))
    }
}

/// # Safety
/// As `helper_object`; `ctx` is a leaked box the function then owns.
unsafe fn create_tsfn(raw: sys::napi_env, ctx: *mut Ctx) -> Result<Tsfn> {
    let mut name = null_mut();
    let mut tsfn = null_mut();
    // SAFETY: as the caller promises; `call_js` and `finalize_ctx` take `ctx`.
    unsafe {
        check_status!(sys::napi_create_string_utf8(raw, c"packcache.load".as_ptr(), -1, &mut name))?;
        check_status!(sys::napi_create_threadsafe_function(
            raw,
            null_mut(),
            null_mut(),
            name,
            0,
            1,
            ctx.cast(),
            Some(finalize_ctx),
            ctx.cast(),
            Some(call_js),
            &mut tsfn,
        ))?;
    }
    Ok(Tsfn(tsfn))
}

fn run(store: &Store, scopes: &[String], link: &Link) {
    let plan = match store.prepare_load(scopes) {
        Ok(plan) => plan,
        Err(error) => return link.send(Msg::Failed { scope: WHOLE_LOAD, error }),
    };
    store.decode(plan, |event| match event {
        LoadEvent::Part { scope, seq, part } => {
            let offsets = part.pairs.into_flattened();
            link.send(Msg::Part { scope, seq, bytes: part.bytes, offsets });
        }
        LoadEvent::Failed { scope, error } => link.send(Msg::Failed { scope, error }),
    });
}
