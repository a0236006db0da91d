// packcache/rollup: a content-addressed cache for the `transform` hooks of
// Rollup 4, Vite and Rolldown plugins. See plugins/rollup.d.ts.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { hash, fingerprint, changedFiles } = require('../loader.js')
const { acquireStorage, Usage, stableStringify } = require('./shared.js')

/** Bumped when the entry layout or key recipe changes. */
const ENTRY_FORMAT = 'packcache-transform-1'
const DAY = 86_400_000
const IDLE_SAVE_MS = 5_000

/**
 * Context members a cached transform may use. Anything else it touches
 * (`emitFile`, `resolve`, `load`, `getModuleInfo`, `getCombinedSourcemap`, …)
 * makes its result depend on more than (plugin, options, id, code): that
 * result is returned but not stored.
 */
const REPLAYED = new Set(['addWatchFile', 'warn'])
const PURE = new Set(['parse', 'error', 'meta', 'debug', 'info'])

/** Files whose content keys every entry unless `defaultDependencies: false`. */
const DEFAULT_DEPENDENCIES = [
  'package.json',
  'package-lock.json',
  'npm-shrinkwrap.json',
  'yarn.lock',
  'pnpm-lock.yaml',
  'bun.lock',
  'babel.config.js',
  'babel.config.cjs',
  'babel.config.mjs',
  'babel.config.json',
  '.babelrc',
  '.babelrc.json',
  '.browserslistrc',
  'tsconfig.json',
]

function cacheTransforms(plugins, options = {}) {
  if (!Array.isArray(plugins)) throw new TypeError('cacheTransforms(plugins, options): plugins must be an array')
  const state = new CacheState(options)
  return [state.controller(), ...plugins.flatMap((item) => wrapItem(item, state))]
}

/** A plugin, a `[factory, options]` pair (options then key its entries), or an array of those. */
function wrapItem(item, state) {
  if (Array.isArray(item) && typeof item[0] === 'function') {
    const plugin = item[0](item[1])
    if (plugin && plugin.name) state.pluginOptions[plugin.name] ??= item[1] ?? null
    return wrapItem(plugin, state)
  }
  if (Array.isArray(item)) return item.flatMap((p) => wrapItem(p, state))
  return [item && item.transform ? wrapPlugin(item, state) : item]
}

class CacheState {
  constructor(options) {
    const known = [
      'dir',
      'version',
      'scope',
      'maxAge',
      'dependencies',
      'defaultDependencies',
      'packages',
      'pluginOptions',
      'idIndependent',
      'onStats',
    ]
    for (const key of Object.keys(options)) {
      if (!known.includes(key)) throw new TypeError(`cacheTransforms: unknown option ${JSON.stringify(key)}`)
    }
    this.dir = path.resolve(options.dir ?? path.join('node_modules', '.cache', 'packcache-transforms'))
    this.version = String(options.version ?? '')
    this.scope = options.scope ?? 'transforms'
    this.maxAge = options.maxAge ?? 7 * DAY
    const defaults = options.defaultDependencies === false ? [] : DEFAULT_DEPENDENCIES
    const packages = (options.packages ?? []).map((name) => packageJsonPath(name, process.cwd()))
    this.dependencies = [...defaults, ...(options.dependencies ?? []), ...packages].map((p) => path.resolve(p))
    this.pluginOptions = { ...options.pluginOptions }
    this.idIndependent = new Set(options.idIndependent ?? [])
    this.onStats = options.onStats
    this.handle = null
    this.usage = null
    this.salt = null
    this.warned = false
    this.timer = null
    this.stats = newStats()
  }

  /**
   * A dev server transforms on demand and ends its build only when it
   * closes: new entries are also saved once no entry was stored for 5 s.
   */
  scheduleSave() {
    if (this.timer) return void this.timer.refresh()
    this.timer = setTimeout(() => {
      this.timer = null
      this.persist(null, false)
    }, IDLE_SAVE_MS)
    this.timer.unref()
  }

  controller() {
    const state = this
    return {
      name: 'packcache:transform-cache',
      api: { stats: () => ({ ...state.stats }) },
      async buildStart() {
        state.stats = newStats()
        try {
          if (!state.handle) {
            state.handle = acquireStorage(state.dir, `${ENTRY_FORMAT}:${state.version}`)
            state.usage = new Usage(state.handle.storage, state.scope)
          }
          state.salt = await dependencySalt(state.dependencies)
        } catch (error) {
          state.degrade(this, error) // e.g. an unwritable directory: the build runs uncached
          await state.close()
        }
      },
      async buildEnd() {
        await state.persist(this)
      },
      async closeBundle() {
        await state.close()
      },
      async closeWatcher() {
        await state.close()
      },
    }
  }

  get storage() {
    return this.handle?.storage
  }

  /** Saves this build's new entries and last-used times; drops expired entries. */
  async persist(ctx, endOfBuild = true) {
    clearTimeout(this.timer)
    this.timer = null
    if (!this.storage) return
    try {
      await this.usage.flush()
      this.stats.expired = await this.usage.prune(this.maxAge)
    } catch (error) {
      this.degrade(ctx, error)
      // Damaged last-used times are dropped (their entries then wait for a new use to expire).
      if (error.code === 'PACKCACHE_CORRUPT') await this.usage.reset().catch(() => {})
    }
    try {
      this.stats.savedBytes = (await this.storage.save()).bytesWritten
    } catch (error) {
      this.degrade(ctx, error)
    }
    if (endOfBuild) this.onStats?.({ ...this.stats })
  }

  async close() {
    clearTimeout(this.timer)
    this.timer = null
    const handle = this.handle
    this.handle = null
    this.usage = null
    await handle?.release()
  }

  /** A cache failure never fails the build: warn once, run uncached. */
  degrade(ctx, error) {
    if (this.warned) return
    this.warned = true
    const message = `packcache: transform cache unavailable, building without it: ${error.message} (${error.code ?? 'no code'})`
    if (ctx && typeof ctx.warn === 'function') ctx.warn(message)
    else process.emitWarning(message)
  }
}

function newStats() {
  return { hits: 0, misses: 0, stored: 0, uncacheable: 0, stale: 0, expired: 0, savedBytes: 0 }
}

/** The package.json of package `name` as resolved from `from` (its version keys the entries). */
function packageJsonPath(name, from) {
  try {
    return require.resolve(`${name}/package.json`, { paths: [from] })
  } catch {
    // package.json hidden by an `exports` map: walk up from the entry point.
    let dir = path.dirname(require.resolve(name, { paths: [from] }))
    for (;;) {
      const candidate = path.join(dir, 'package.json')
      try {
        if (JSON.parse(fs.readFileSync(candidate, 'utf8')).name === name) return candidate
      } catch {}
      const parent = path.dirname(dir)
      if (parent === dir) throw new Error(`cacheTransforms: no package.json found for ${name}`)
      dir = parent
    }
  }
}

/** blake3 of the dependency files' contents (missing ones count as such). */
async function dependencySalt(files) {
  const parts = await Promise.all(
    files.map((file) =>
      fs.promises.readFile(file).then(
        (bytes) => `${file}\0${hash(bytes)}`,
        (error) => `${file}\0${error.code}`,
      ),
    ),
  )
  return hash(parts.join('\n'))
}

function wrapPlugin(plugin, state) {
  const hook = plugin.transform
  const handler = typeof hook === 'function' ? hook : hook.handler
  if (typeof handler !== 'function') return plugin
  const identity = {
    name: plugin.name ?? '',
    version: plugin.version ?? '',
    source: hash(handler.toString()),
  }
  const cached = async function (code, id, ...rest) {
    return cachedTransform(this, handler, identity, state, code, id, rest)
  }
  const transform = typeof hook === 'function' ? cached : { ...hook, handler: cached }
  return { ...plugin, transform }
}

function entryKey(state, identity, code, id) {
  if (identity.salt !== state.salt) {
    const options = stableStringify(state.pluginOptions[identity.name] ?? null)
    const who = [ENTRY_FORMAT, identity.name, identity.version, identity.source, options, state.salt]
    identity.prefix = JSON.stringify(who)
    identity.salt = state.salt
  }
  const where = state.idIndependent.has(identity.name) ? '' : id
  return Buffer.from(hash(`${identity.prefix}\0${where}\0${code}`), 'hex')
}

async function cachedTransform(ctx, handler, identity, state, code, id, rest) {
  const storage = state.storage
  if (!storage || typeof code !== 'string') return handler.call(ctx, code, id, ...rest)
  const key = entryKey(state, identity, code, id)
  let found = null
  try {
    found = await storage.get(state.scope, key)
    if (found) found = await validEntry(found)
  } catch (error) {
    state.degrade(ctx, error)
    found = null
  }
  if (found) {
    state.stats.hits++
    state.usage.touch(key)
    replay(ctx, found)
    return found.result
  }
  if (found === false) state.stats.stale++
  state.stats.misses++
  const recorder = new Recorder(ctx)
  const result = await handler.call(recorder.proxy, code, id, ...rest)
  if (recorder.uncacheable) {
    state.stats.uncacheable++
    return result
  }
  try {
    const entry = await makeEntry(result, recorder)
    if (entry) {
      storage.set(state.scope, key, entry)
      state.usage.touch(key)
      state.stats.stored++
      state.scheduleSave()
    } else {
      state.stats.uncacheable++
    }
  } catch (error) {
    state.degrade(ctx, error)
  }
  return result
}

/** The stored entry, `false` when a file it depends on changed since. */
async function validEntry(bytes) {
  const split = bytes.indexOf(0)
  const entry = JSON.parse(bytes.subarray(0, split).toString())
  if (entry.watch.length > 0 && (await changedFiles(bytes.subarray(split + 1))).length > 0) return false
  return entry
}

/** An entry: JSON, NUL, then the fingerprint snapshot of its watched files. */
async function makeEntry(result, recorder) {
  const normal = normalizeResult(result)
  if (normal === undefined) return null
  const watch = [...recorder.watchFiles]
  let json
  try {
    json = JSON.stringify({ result: normal, watch, warnings: recorder.warnings })
  } catch {
    return null // a warning that is not plain data
  }
  return [Buffer.from(json), Buffer.from([0]), await fingerprint(watch)]
}

/** A transform result as plain JSON, or `undefined` when it cannot be stored. */
function normalizeResult(result) {
  if (result == null || typeof result === 'string') return result ?? null
  if (typeof result !== 'object') return undefined
  const out = {}
  for (const [k, v] of Object.entries(result)) {
    if (k === 'ast') continue // Rollup parses the code again when it is absent
    if (k === 'map') out.map = normalizeMap(v)
    else if (typeof v === 'function' || typeof v === 'symbol') return undefined
    else out[k] = v
  }
  try {
    return JSON.parse(JSON.stringify(out, strictJson))
  } catch {
    return undefined // cycles, BigInt, functions, Sets…: not storable as they are
  }
}

/** A JSON replacer that refuses what JSON would silently drop or flatten. */
function strictJson(key, value) {
  if (typeof value === 'function' || typeof value === 'symbol') throw new TypeError(`${key}: not JSON`)
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const proto = Object.getPrototypeOf(value)
    if (proto !== Object.prototype && proto !== null) throw new TypeError(`${key}: not a plain object`)
  }
  return value
}

function normalizeMap(map) {
  if (map == null || typeof map === 'string') return map
  return typeof map.toJSON === 'function' ? map.toJSON() : JSON.parse(JSON.stringify(map))
}

function replay(ctx, entry) {
  for (const file of entry.watch) ctx.addWatchFile(file)
  for (const warning of entry.warnings) ctx.warn(warning)
}

/** Passes `this` through, noting what the hook does with it. */
class Recorder {
  constructor(ctx) {
    this.watchFiles = new Set()
    this.warnings = []
    this.uncacheable = false
    this.proxy = new Proxy(ctx, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver)
        if (typeof prop !== 'string' || typeof value !== 'function') return value
        if (prop === 'addWatchFile') return (file) => this.watch(target, file)
        if (prop === 'warn') return (warning, ...more) => this.warn(target, warning, more)
        if (!PURE.has(prop) && !REPLAYED.has(prop)) this.uncacheable = true
        return value.bind(target)
      },
    })
  }

  watch(target, file) {
    if (typeof file === 'string' && path.isAbsolute(file)) this.watchFiles.add(file)
    else this.uncacheable = true // a virtual module: nothing to fingerprint
    return target.addWatchFile(file)
  }

  warn(target, warning, more) {
    if (typeof warning === 'string') this.warnings.push(warning)
    else if (warning && typeof warning.message === 'string') this.warnings.push({ ...warning })
    else this.uncacheable = true
    return target.warn(warning, ...more)
  }
}

module.exports = { cacheTransforms }
