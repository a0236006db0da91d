//! Streaming loads. Packs are verified and decoded on worker threads; each
//! decoded pack crosses to the JS thread through a threadsafe function and
//! becomes its pairs there at once, so conversion overlaps decoding and no
//! single JS task converts the whole load.
//!
//! A pack becomes one Buffer over its bytes (the private mapping when stored
//! raw, else the decoded buffer) plus a typed array of offsets; a small JS
//! helper, compiled once per thread, slices it into `[key, value]` Buffers
//! with `subarray` — views, not copies, and no backing store per value.

use std::cell::RefCell;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::Arc;

use napi::{check_status, sys, Env, Result};

use crate::convert::copied;
use crate::engine::load::{Bytes, LoadEvent};
use crate::engine::{Error, Store};
use crate::js_errors;

const HELPERS: &str = r#"(() => {
  // Converts queued packs into pairs in slices of at most SLICE_MS, yielding
  // to the event loop between slices, then settles the load's promise.
  // Node's Buffer class proper (what `subarray` builds through species
  // lookup), constructed directly: the same Buffer views, faster. Falls
  // back to `subarray` where it is not what this expects.
  const Species = Buffer[Symbol.species]
  const FastBuffer = typeof Species === 'function' && Buffer.isBuffer(new Species(new ArrayBuffer(2), 1, 1)) ? Species : null
  const SLICE_MS = 3
  const STEP = 512
  const pump = (st) => {
    st.scheduled = false
    const t0 = performance.now()
    while (st.queue.length > 0 && performance.now() - t0 < SLICE_MS) {
      const job = st.queue[0]
      const offs = job.offs
      const end = Math.min(offs.length, job.at + STEP * 4)
      const ab = job.buf.buffer
      const base = job.buf.byteOffset
      const out = st.parts[job.scope][job.seq]
      if (FastBuffer) {
        for (let i = job.at; i < end; i += 4) {
          out[i >> 2] = [new FastBuffer(ab, base + offs[i], offs[i + 1] - offs[i]), new FastBuffer(ab, base + offs[i + 2], offs[i + 3] - offs[i + 2])]
        }
      } else {
        const buf = job.buf
        for (let i = job.at; i < end; i += 4) out[i >> 2] = [buf.subarray(offs[i], offs[i + 1]), buf.subarray(offs[i + 2], offs[i + 3])]
      }
      job.at = end
      if (end === offs.length) st.queue.shift()
    }
    if (st.queue.length > 0) schedule(st)
    else if (st.ended) settle(st)
  }
  const schedule = (st) => {
    if (!st.scheduled) {
      st.scheduled = true
      setImmediate(pump, st)
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
    start(scopes, single, columns) {
      const st = { parts: Array.from({ length: scopes }, () => []), queue: [], single, columns, ended: false, scheduled: false, error: null }
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
      st.queue.push({ scope, seq, buf, offs, at: 0 })
      schedule(st)
    },
    fail(st, error) {
      if (!st.error) st.error = error
      st.queue.length = 0
    },
    end(st) {
      st.ended = true
      if (st.queue.length === 0 && !st.scheduled) settle(st)
    },
  }
})()"#;

thread_local! {
    /// The helper object per JS thread (each env lives on its own thread).
    static HELPER: RefCell<Option<(usize, sys::napi_ref)>> = const { RefCell::new(None) };
}

unsafe fn helper(env: sys::napi_env, name: &std::ffi::CStr) -> Result<(sys::napi_value, sys::napi_value)> {
    let cached = HELPER.with(|h| *h.borrow()).filter(|(e, _)| *e == env as usize);
    let object = match cached {
        Some((_, r)) => {
            let mut v = null_mut();
            check_status!(unsafe { sys::napi_get_reference_value(env, r, &mut v) })?;
            v
        }
        None => {
            let mut src = null_mut();
            check_status!(unsafe {
                sys::napi_create_string_utf8(env, HELPERS.as_ptr().cast(), HELPERS.len() as isize, &mut src)
            })?;
            let mut v = null_mut();
            check_status!(unsafe { sys::napi_run_script(env, src, &mut v) })?;
            let mut r = null_mut();
            check_status!(unsafe { sys::napi_create_reference(env, v, 1, &mut r) })?;
            HELPER.with(|h| *h.borrow_mut() = Some((env as usize, r)));
            v
        }
    };
    let mut f = null_mut();
    check_status!(unsafe { sys::napi_get_named_property(env, object, name.as_ptr(), &mut f) })?;
    Ok((object, f))
}

unsafe fn call(env: sys::napi_env, name: &std::ffi::CStr, args: &[sys::napi_value]) -> Result<sys::napi_value> {
    let (this, f) = unsafe { helper(env, name)? };
    let mut out = null_mut();
    check_status!(unsafe { sys::napi_call_function(env, this, f, args.len(), args.as_ptr(), &mut out) })?;
    Ok(out)
}

unsafe extern "C" fn release_bytes(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    drop(unsafe { Box::from_raw(hint.cast::<Bytes>()) });
}

/// A Buffer over `bytes` without a copy; `Err(bytes)` back where external
/// memory is refused (e.g. Electron), for the caller to copy.
unsafe fn external(env: sys::napi_env, bytes: Bytes) -> Result<std::result::Result<sys::napi_value, Bytes>> {
    let (ptr, len) = bytes.raw_parts();
    let mut out = null_mut();
    if len == 0 {
        let mut data = null_mut();
        check_status!(unsafe { sys::napi_create_buffer(env, 0, &mut data, &mut out) })?;
        return Ok(Ok(out));
    }
    let hint = Box::into_raw(Box::new(bytes));
    // SAFETY: the bytes live until `release_bytes` drops the box owning them
    // (a Vec's heap data, a private writable mapping, the load's region or group).
    let status = unsafe {
        sys::napi_create_external_buffer(env, len, ptr.cast_mut().cast(), Some(release_bytes), hint.cast(), &mut out)
    };
    if status == sys::Status::napi_ok {
        return Ok(Ok(out));
    }
    Ok(Err(*unsafe { Box::from_raw(hint) }))
}

/// Copies just the span of a shared buffer (region or group) that a part's
/// pairs cover (its own, fully written slot) and rebases the offsets onto
/// the copy.
unsafe fn span_copy(env: sys::napi_env, shared: &Bytes, offsets: &mut [usize]) -> Result<sys::napi_value> {
    let (Some(&lo), Some(&hi)) = (offsets.iter().min(), offsets.iter().max()) else {
        return unsafe { copied(env, &[]) };
    };
    let (ptr, len) = shared.raw_parts();
    if hi > len {
        return Err(napi::Error::from_reason("pair offsets outside the load's shared buffer"));
    }
    let span = unsafe { std::slice::from_raw_parts(ptr.add(lo), hi - lo) };
    offsets.iter_mut().for_each(|o| *o -= lo);
    unsafe { copied(env, span) }
}

/// The Buffer a part's pairs slice, and their offsets into it. The load's
/// region and its group of mapped packs each become one Buffer, made once.
unsafe fn part_buffer(
    env: sys::napi_env,
    ctx: &mut Ctx,
    bytes: Bytes,
    mut offsets: Vec<usize>,
) -> Result<(sys::napi_value, Vec<usize>)> {
    let (shared, made) = match &bytes {
        Bytes::Region(r) => (Bytes::Region(r.clone()), &mut ctx.region),
        Bytes::Group(g) => (Bytes::Group(g.clone()), &mut ctx.group),
        _ => {
            return match unsafe { external(env, bytes)? } {
                Ok(buf) => Ok((buf, offsets)),
                Err(other) => Ok((unsafe { copied(env, other.as_slice())? }, offsets)),
            };
        }
    };
    if let Some(r) = *made {
        return Ok((unsafe { get_ref(env, r)? }, offsets));
    }
    if !ctx.no_external {
        match unsafe { external(env, shared)? } {
            Ok(buf) => {
                let mut r = null_mut();
                check_status!(unsafe { sys::napi_create_reference(env, buf, 1, &mut r) })?;
                *made = Some(r);
                return Ok((buf, offsets));
            }
            Err(_) => ctx.no_external = true,
        }
    }
    let buf = unsafe { span_copy(env, &bytes, &mut offsets)? };
    Ok((buf, offsets))
}

/// The offsets as a typed array: `Uint32Array` (half the memory) when they
/// all fit, else `Float64Array` (exact up to 2^53).
unsafe fn offsets_array(env: sys::napi_env, values: &[usize]) -> Result<sys::napi_value> {
    let narrow = values.iter().all(|&v| v <= u32::MAX as usize);
    let (kind, width) = match narrow {
        true => (sys::TypedarrayType::uint32_array, 4),
        false => (sys::TypedarrayType::float64_array, 8),
    };
    let mut data = null_mut();
    let mut ab = null_mut();
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
    /// The JS Buffer over the load's shared region, once created.
    region: Option<sys::napi_ref>,
    /// The JS Buffer over the load's group of mapped packs, once created.
    group: Option<sys::napi_ref>,
    /// External buffers are refused here: parts are copied.
    no_external: bool,
}

struct Tsfn(sys::napi_threadsafe_function);
// SAFETY: N-API threadsafe functions are made to be called from any thread,
// concurrently.
unsafe impl Send for Tsfn {}
unsafe impl Sync for Tsfn {}

impl Tsfn {
    fn send(&self, msg: Msg) {
        let data = Box::into_raw(Box::new(msg));
        let status = unsafe {
            sys::napi_call_threadsafe_function(self.0, data.cast(), sys::ThreadsafeFunctionCallMode::blocking)
        };
        if status != sys::Status::napi_ok {
            drop(unsafe { Box::from_raw(data) }); // the env is going away
        }
    }
}

impl Drop for Tsfn {
    fn drop(&mut self) {
        unsafe { sys::napi_release_threadsafe_function(self.0, sys::ThreadsafeFunctionReleaseMode::release) };
    }
}

unsafe fn get_ref(env: sys::napi_env, r: sys::napi_ref) -> Result<sys::napi_value> {
    let mut v = null_mut();
    check_status!(unsafe { sys::napi_get_reference_value(env, r, &mut v) })?;
    Ok(v)
}

unsafe fn on_message(env: sys::napi_env, ctx: &mut Ctx, msg: Msg) -> Result<()> {
    let state = unsafe { get_ref(env, ctx.state)? };
    match msg {
        Msg::Part { scope, seq, bytes, offsets } => {
            if !ctx.failed {
                unsafe {
                    let (buf, offsets) = part_buffer(env, ctx, bytes, offsets)?;
                    let args = [state, number(env, scope)?, number(env, seq)?, buf, offsets_array(env, &offsets)?];
                    call(env, c"push", &args)?;
                }
            }
        }
        Msg::Failed { scope, error } => {
            if !ctx.failed {
                ctx.failed = true;
                let error = match ctx.scopes.get(scope) {
                    Some(name) => crate::binding::in_scope(name, error),
                    None => error,
                };
                let obj = js_errors::error_object(env, false, error.code(), &error.to_string());
                unsafe { call(env, c"fail", &[state, obj])? };
            }
        }
        Msg::Done => {
            ctx.ended = true;
            unsafe { call(env, c"end", &[state])? };
        }
    }
    Ok(())
}

unsafe fn number(env: sys::napi_env, n: usize) -> Result<sys::napi_value> {
    let mut out = null_mut();
    check_status!(unsafe { sys::napi_create_double(env, n as f64, &mut out) })?;
    Ok(out)
}

unsafe extern "C" fn call_js(env: sys::napi_env, _cb: sys::napi_value, context: *mut c_void, data: *mut c_void) {
    let msg = *unsafe { Box::from_raw(data.cast::<Msg>()) };
    if env.is_null() {
        return; // the environment is shutting down
    }
    let ctx = unsafe { &mut *context.cast::<Ctx>() };
    if ctx.ended {
        return;
    }
    if let Err(e) = unsafe { on_message(env, ctx, msg) } {
        // Settle the promise even when N-API or the helper failed; a thrown
        // JS exception must not stay pending (it would surface as uncaught).
        let mut pending = false;
        unsafe { sys::napi_is_exception_pending(env, &mut pending) };
        if pending {
            let mut ignored = null_mut();
            unsafe { sys::napi_get_and_clear_last_exception(env, &mut ignored) };
        }
        let error = Error::Internal(format!("converting a load failed: {e}"));
        let _ = unsafe { on_message(env, ctx, Msg::Failed { scope: WHOLE_LOAD, error }) };
        let _ = unsafe { on_message(env, ctx, Msg::Done) };
        ctx.ended = true;
    }
}

unsafe extern "C" fn finalize_ctx(env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    let ctx = unsafe { Box::from_raw(data.cast::<Ctx>()) };
    if !env.is_null() {
        unsafe { sys::napi_delete_reference(env, ctx.state) };
        for r in [ctx.region, ctx.group].into_iter().flatten() {
            unsafe { sys::napi_delete_reference(env, r) };
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
    unsafe {
        let (mut single, mut columns) = (null_mut(), null_mut());
        check_status!(sys::napi_get_boolean(raw, shape == Shape::Pairs, &mut single))?;
        check_status!(sys::napi_get_boolean(raw, shape == Shape::Columns, &mut columns))?;
        let state = call(raw, c"start", &[number(raw, scopes.len())?, single, columns])?;
        let mut promise = null_mut();
        check_status!(sys::napi_get_named_property(raw, state, c"promise".as_ptr(), &mut promise))?;
        let mut state_ref = null_mut();
        check_status!(sys::napi_create_reference(raw, state, 1, &mut state_ref))?;
        let ctx = Box::into_raw(Box::new(Ctx {
            state: state_ref,
            scopes: scopes.clone(),
            failed: false,
            ended: false,
            region: None,
            group: None,
            no_external: false,
        }));
        let mut name = null_mut();
        check_status!(sys::napi_create_string_utf8(raw, c"packcache.load".as_ptr(), -1, &mut name))?;
        let mut tsfn = null_mut();
        let status = sys::napi_create_threadsafe_function(
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
        );
        if status != sys::Status::napi_ok {
            let ctx = Box::from_raw(ctx);
            sys::napi_delete_reference(raw, ctx.state);
            check_status!(status)?;
        }
        let tsfn = Tsfn(tsfn);
        let spawned = std::thread::Builder::new().name("packcache-load".into()).spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&store, &scopes, &tsfn)));
            if let Err(p) = result {
                tsfn.send(Msg::Failed {
                    scope: WHOLE_LOAD,
                    error: Error::Internal(crate::engine::store::panic_message(&p)),
                });
            }
            tsfn.send(Msg::Done);
        });
        if let Err(e) = spawned {
            return Err(napi::Error::from_reason(format!("cannot start a load thread: {e}")));
        }
        Ok(promise)
    }
}

fn run(store: &Store, scopes: &[String], tsfn: &Tsfn) {
    let plan = match store.prepare_load(scopes) {
        Ok(plan) => plan,
        Err(error) => return tsfn.send(Msg::Failed { scope: WHOLE_LOAD, error }),
    };
    store.decode(plan, |event| match event {
        LoadEvent::Part { scope, seq, part } => {
            let offsets = part.pairs.into_flattened();
            tsfn.send(Msg::Part { scope, seq, bytes: part.bytes, offsets });
        }
        LoadEvent::Failed { scope, error } => tsfn.send(Msg::Failed { scope, error }),
    });
}
