//! The JS class `PackStorage` and the function `hash`.

use std::sync::Arc;

use napi::bindgen_prelude::{FromNapiValue, PromiseRaw, This, ToNapiValue, Unknown};
use napi::{Env, Result};
use napi_derive::napi;

use crate::engine::fs::RealFs;
use crate::engine::{self, Store};
use crate::node::convert::MaybeBuffer;
use crate::node::stream::Shape;
use crate::node::{args, js_errors, options};

/// What a `save()` did.
#[napi(object)]
pub struct SaveStats {
    /// Generation of the committed manifest after this save (0 while none exists).
    pub generation: f64,
    pub packs_written: u32,
    /// Bytes of pack files written.
    pub bytes_written: f64,
    /// Items written into new packs (changed items plus compacted ones).
    pub items_written: f64,
    /// Pack files deleted (no longer referenced).
    pub packs_removed: u32,
    /// Version directories deleted by `expire`.
    pub versions_expired: u32,
}

impl From<engine::SaveStats> for SaveStats {
    fn from(s: engine::SaveStats) -> Self {
        SaveStats {
            generation: s.generation as f64,
            packs_written: s.packs_written,
            bytes_written: s.bytes_written as f64,
            items_written: s.items_written as f64,
            packs_removed: s.packs_removed,
            versions_expired: s.versions_expired,
        }
    }
}

/// Runs `job` on the blocking pool and settles a Promise with `to_js(result)`,
/// or rejects with a coded error. A panic in `job` becomes `PACKCACHE_INTERNAL`.
pub(crate) fn run<'e, T, V>(
    env: &'e Env,
    job: impl FnOnce() -> engine::Result<T> + Send + 'static,
    to_js: impl FnOnce(T) -> V + 'static,
) -> Result<PromiseRaw<'e, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
{
    settle(env, async move { tokio::task::spawn_blocking(job).await }, to_js)
}

/// Like `run`, for short jobs (a `get`): runs on the async worker itself,
/// saving the hop to the blocking pool and back.
fn run_short<'e, T, V>(
    env: &'e Env,
    job: impl FnOnce() -> engine::Result<T> + Send + 'static,
    to_js: impl FnOnce(T) -> V + 'static,
) -> Result<PromiseRaw<'e, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
{
    let caught = || std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).map_err(|_| "a worker panicked");
    settle(env, async move { caught() }, to_js)
}

fn settle<'e, T, V, E: std::fmt::Display>(
    env: &'e Env,
    fut: impl std::future::Future<Output = std::result::Result<engine::Result<T>, E>> + Send + 'static,
    to_js: impl FnOnce(T) -> V + 'static,
) -> Result<PromiseRaw<'e, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
{
    env.spawn_future_with_callback(
        async move {
            let joined = fut.await;
            Ok(joined.unwrap_or_else(|e| Err(engine::Error::Internal(format!("worker failed: {e}")))))
        },
        move |env, result| match result {
            Ok(value) => Ok(to_js(value)),
            Err(e) => Err(js_errors::engine_error(env, &e)),
        },
    )
}

/// What the last finished load of an instance read and handed out.
#[napi(object)]
pub struct LoadStats {
    /// Scopes asked for.
    pub scopes: u32,
    /// Pairs handed out (committed and unsaved).
    pub items: f64,
    /// Their keys and values, in bytes.
    pub raw_bytes: f64,
    /// Pack files read, and their bytes on disk.
    pub packs: u32,
    pub read_bytes: f64,
    /// Milliseconds from reading the manifest to the last pack decoded (the
    /// JS side's conversion to pairs runs on after it).
    pub ms: f64,
    /// Threads the decoding could use.
    pub threads: u32,
}

/// A persistent build cache on one directory and version.
///
/// Errors carry a stable `code`: `PACKCACHE_CORRUPT` (bytes on disk failed a
/// checksum; that scope is reset by the next save), `PACKCACHE_INVALID_ARG`,
/// `PACKCACHE_READONLY`, `PACKCACHE_IO` (OS error in the message),
/// `PACKCACHE_CLOSED`, `PACKCACHE_INTERNAL` (a bug). Wrong argument types
/// throw a `TypeError` with code `PACKCACHE_INVALID_ARG`.
#[napi]
pub struct PackStorage {
    store: Arc<Store>,
}

#[napi]
impl PackStorage {
    #[napi(constructor, catch_unwind, ts_args_type = "options: PackStorageOptions")]
    pub fn new(env: Env, this: This, options: Unknown) -> Result<Self> {
        let opts = options::parse(&env, &options)?;
        let store = Store::open(opts, Arc::new(RealFs)).map_err(|e| js_errors::engine_error(&env, &e))?;
        let store = Arc::new(store);
        crate::node::fast::bind_set(&env, &this, &store)?;
        Ok(PackStorage { store })
    }

    /// All `[key, value]` pairs of `scope`, including this instance's unsaved
    /// sets and removes. `[]` for an unknown scope.
    #[napi(catch_unwind, ts_args_type = "scope: string", ts_return_type = "Promise<Array<[Buffer, Buffer]>>")]
    pub fn load<'e>(&self, env: &'e Env, scope: Unknown) -> Result<Unknown<'e>> {
        let scope = args::string(env, &scope, "scope")?;
        self.start_load(env, vec![scope], Shape::Pairs)
    }

    /// Loads several scopes in parallel; results in the same order.
    #[napi(catch_unwind, ts_args_type = "scopes: string[]", ts_return_type = "Promise<Array<Array<[Buffer, Buffer]>>>")]
    pub fn load_many<'e>(&self, env: &'e Env, scopes: Unknown) -> Result<Unknown<'e>> {
        self.start_load(env, args::string_array(env, &scopes, "scopes")?, Shape::PairsPerScope)
    }

    /// Loads several scopes like `loadMany`, without a JS object per pair:
    /// per scope, its parts (one per pack, and one for unsaved sets), each a
    /// `buffer` and four `offsets` into it per pair — key start, key end,
    /// value start, value end — so pair `i` is
    /// `buffer.subarray(offsets[4 * i], offsets[4 * i + 1])` and
    /// `buffer.subarray(offsets[4 * i + 2], offsets[4 * i + 3])`. Parts may
    /// share one `buffer`; never write into it. For callers that decode the
    /// values themselves (`buffer.toString('utf8', start, end)`), this skips
    /// the two Buffers and the array `loadMany` makes per pair, and the
    /// collections of them.
    #[napi(
        catch_unwind,
        ts_args_type = "scopes: string[]",
        ts_return_type = "Promise<Array<Array<{ buffer: Buffer; offsets: Uint32Array | Float64Array }>>>"
    )]
    pub fn load_columns<'e>(&self, env: &'e Env, scopes: Unknown) -> Result<Unknown<'e>> {
        self.start_load(env, args::string_array(env, &scopes, "scopes")?, Shape::Columns)
    }

    /// One value (or `null`), reading at most one pack. A pack this instance
    /// has already opened is read on the calling thread (one block of at most
    /// 64 KiB is decoded); anything else runs on the worker pool.
    #[napi(
        catch_unwind,
        ts_args_type = "scope: string, key: Buffer | Uint8Array | string",
        ts_return_type = "Promise<Buffer | null>"
    )]
    pub fn get<'e>(&self, env: &'e Env, scope: Unknown, key: Unknown) -> Result<PromiseRaw<'e, MaybeBuffer>> {
        let scope = args::string(env, &scope, "scope")?;
        let key = args::key(env, &key)?.into_owned();
        // Most gets of a warm instance need one block of a pack it has open:
        // answering here saves two thread hops (≈ 3× faster than the pool).
        if let Some(found) = self.store.get_cached(&scope, &key) {
            return PromiseRaw::resolve(env, MaybeBuffer(found));
        }
        let store = self.store.clone();
        run_short(env, move || store.get(&scope, &key), MaybeBuffer)
    }

    /// The values of `keys` in `scope`, in the order asked (`null` where
    /// absent): unsaved updates first, then one pass over the packs whose
    /// key filters may hold the rest, each block read once. Cheaper than one
    /// `get` per key when a plugin restores a known set of entries.
    #[napi(
        catch_unwind,
        ts_args_type = "scope: string, keys: Array<Buffer | Uint8Array | string>",
        ts_return_type = "Promise<Array<Buffer | null>>"
    )]
    pub fn get_many<'e>(
        &self,
        env: &'e Env,
        scope: Unknown,
        keys: Unknown,
    ) -> Result<PromiseRaw<'e, Vec<MaybeBuffer>>> {
        let scope = args::string(env, &scope, "scope")?;
        let keys = args::key_array(env, &keys, "keys")?;
        let store = self.store.clone();
        run(env, move || store.get_many(&scope, &keys), |values| values.into_iter().map(MaybeBuffer).collect())
    }

    /// The live keys of `scope` (unsaved sets and removes applied), sorted
    /// bytewise. Reads the pack indexes only: no value is decoded, so this
    /// is cheap beside `load` when a plugin needs to know what is cached.
    #[napi(catch_unwind, ts_args_type = "scope: string", ts_return_type = "Promise<Array<Buffer>>")]
    pub fn keys<'e>(&self, env: &'e Env, scope: Unknown) -> Result<PromiseRaw<'e, Vec<MaybeBuffer>>> {
        let scope = args::string(env, &scope, "scope")?;
        let store = self.store.clone();
        run(env, move || store.keys(&scope), |keys| keys.into_iter().map(|k| MaybeBuffer(Some(k))).collect())
    }

    /// Records a copy of `value` for `key`; `save()` persists it. `value`
    /// may be an array of Buffers (what webpack's `buffersSerializer`
    /// returns): the parts are stored back to back as one value, copied once,
    /// with no JS-side `Buffer.concat`. Pairs are
    /// staged in chunks of about `packSize` bytes that are compressed and
    /// written to a stage file in the background as they fill (unsaved data
    /// does not stay in memory); when the background falls behind, the `set`
    /// that fills a chunk does that itself (a few ms). Each instance's `set`
    /// is bound to it, so `const { set } = storage` works (not when a
    /// subclass overrides `set`: its override is what gets called).
    #[napi(
        catch_unwind,
        ts_args_type = "scope: string, key: Buffer | Uint8Array | string, value: Buffer | Uint8Array | Array<Buffer | Uint8Array>"
    )]
    pub fn set(&self, env: Env, scope: Unknown, key: Unknown, value: Unknown) -> Result<()> {
        set_on(&self.store, &env, &scope, &key, &value)
    }

    /// Records the removal of `key` in memory; `save()` persists it. No I/O.
    #[napi(catch_unwind, ts_args_type = "scope: string, key: Buffer | Uint8Array | string")]
    pub fn remove(&self, env: Env, scope: Unknown, key: Unknown) -> Result<()> {
        let scope = args::string(&env, &scope, "scope")?;
        let key = args::key(&env, &key)?;
        self.store.remove(&scope, &key).map_err(|e| js_errors::engine_error(&env, &e))
    }

    /// Commits the updates made before this call as a new generation. Later
    /// `set()`s go into the next save; overlapping saves commit in call order.
    #[napi(catch_unwind, ts_return_type = "Promise<SaveStats>")]
    pub fn save<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, SaveStats>> {
        let batch = self.store.begin_save();
        let store = self.store.clone();
        run(env, move || store.finish(batch?), SaveStats::from)
    }

    /// Drops one scope (and its unsaved updates), or everything of this version.
    #[napi(catch_unwind, ts_args_type = "scope?: string", ts_return_type = "Promise<void>")]
    pub fn reset<'e>(&self, env: &'e Env, scope: Option<Unknown>) -> Result<PromiseRaw<'e, ()>> {
        let scope = match scope {
            Some(s) if !is_nullish(&s)? => Some(args::string(env, &s, "scope")?),
            _ => None,
        };
        let batch = self.store.begin_reset(scope.as_deref());
        let store = self.store.clone();
        run(env, move || store.finish(batch?).map(|_| ()), |v| v)
    }

    /// What the last finished `load`, `loadMany` or `loadColumns` of this
    /// instance read and handed out; `null` before the first.
    #[napi(catch_unwind, ts_return_type = "LoadStats | null")]
    pub fn load_stats(&self) -> Option<LoadStats> {
        self.store.last_load().map(|s| LoadStats {
            scopes: s.scopes as u32,
            items: s.items as f64,
            raw_bytes: s.raw_bytes as f64,
            packs: s.packs as u32,
            read_bytes: s.read_bytes as f64,
            ms: s.ms,
            threads: s.threads as u32,
        })
    }

    /// Names of scopes that hold data (committed or unsaved), sorted.
    #[napi(catch_unwind, ts_return_type = "Promise<string[]>")]
    pub fn scopes<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, Vec<String>>> {
        let store = self.store.clone();
        run(env, move || store.scopes(), |v| v)
    }

    /// Waits for queued saves, then releases files and memory. Does not save.
    /// Every later call rejects with `PACKCACHE_CLOSED`.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn close<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let store = self.store.clone();
        run(env, move || Ok(store.close()), |v| v)
    }
}

impl PackStorage {
    /// Starts a load of `scopes` and returns its Promise, shaped as `shape` says.
    fn start_load<'e>(&self, env: &'e Env, scopes: Vec<String>, shape: Shape) -> Result<Unknown<'e>> {
        let promise = crate::node::stream::load(env, self.store.clone(), scopes, shape)?;
        // SAFETY: `promise` is a live value `load` just made in this env.
        unsafe { Unknown::from_napi_value(env.raw(), promise) }
    }
}

/// The work of `set`, shared with the lean entry points in `fast.rs`.
pub(crate) fn set_on(store: &Store, env: &Env, scope: &Unknown, key: &Unknown, value: &Unknown) -> Result<()> {
    // The value first: reading an array of parts may run getters (JS), which
    // must not run while the key's bytes are borrowed. Nothing below runs JS.
    args::with_value_parts(env, value, |parts| {
        let key = args::key(env, key)?;
        args::with_str(env, scope, "scope", |scope| store.set_parts(scope, &key, parts))?
            .map_err(|e| js_errors::engine_error(env, &e))
    })?
}

fn is_nullish(value: &Unknown) -> Result<bool> {
    use napi::ValueType;
    Ok(matches!(value.get_type()?, ValueType::Undefined | ValueType::Null))
}

/// blake3 of `data` (a string is hashed as its UTF-8 bytes): 64 lowercase hex chars.
#[napi(catch_unwind, ts_args_type = "data: Buffer | Uint8Array | string")]
pub fn hash(env: Env, data: Unknown) -> Result<String> {
    let bytes = args::data(&env, &data)?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}
