// packcache/webpack: the disk layer of webpack 5's persistent cache, on a
// packcache store. See plugins/webpack.d.ts and the README.
'use strict'

const path = require('node:path')
const { hash } = require('../loader.js')
const { acquireStorage } = require('./shared.js')
const { BuildDependencies } = require('./webpack-deps.js')
const { EntryGroups } = require('./webpack-groups.js')

const PLUGIN = 'PackcacheWebpackPlugin'
const FORMAT = 'packcache-webpack-1'
const DAY = 86_400_000
const STAGE_DISK = 10 // webpack's Cache.STAGE_DISK

const DEFAULTS = {
  cacheDirectory: undefined,
  name: undefined,
  version: '',
  buildDependencies: {},
  maxAge: 60 * DAY,
  idleTimeout: 60_000,
  idleTimeoutForInitialStore: 5_000,
  groupSize: 2_000,
  compression: 'zstd',
  readonly: false,
}

class PackcacheWebpackPlugin {
  /** @param {import('./webpack').PackcacheWebpackPluginOptions} [options] */
  constructor(options = {}) {
    for (const key of Object.keys(options)) {
      if (!(key in DEFAULTS)) throw new TypeError(`${PLUGIN}: unknown option ${JSON.stringify(key)}`)
    }
    this.options = options
  }

  apply(compiler) {
    if (!compiler.webpack?.util?.serialization?.buffersSerializer) {
      // Rspack: its JS compiler.cache has webpack's hooks but not webpack's serializer.
      compiler
        .getInfrastructureLogger(PLUGIN)
        .warn('this compiler has no webpack.util.serialization.buffersSerializer (Rspack?): the plugin stays off')
      return
    }
    const fsCache = filesystemCacheOptions(compiler.options.cache)
    const options = { ...DEFAULTS, ...pick(fsCache), ...this.options }
    options.buildDependencies = { ...fsCache?.buildDependencies, ...this.options.buildDependencies }
    // Memory stays webpack's; this plugin is the disk layer `type: 'filesystem'` would add.
    compiler.options.cache = { type: 'memory' }
    const cache = new PackcacheCache(compiler, options)
    compiler.hooks.initialize.tap(PLUGIN, () => cache.open())
    tapCache(compiler, cache)
  }
}

/** The options of `cache: { type: 'filesystem', ... }`, which the plugin takes over. */
function filesystemCacheOptions(cache) {
  return cache && typeof cache === 'object' && cache.type === 'filesystem' ? cache : undefined
}

function pick(fsCache) {
  if (!fsCache) return {}
  const keys = ['cacheDirectory', 'name', 'version', 'maxAge', 'idleTimeout', 'idleTimeoutForInitialStore', 'readonly']
  return Object.fromEntries(keys.filter((k) => fsCache[k] !== undefined).map((k) => [k, fsCache[k]]))
}

function tapCache(compiler, cache) {
  const hooks = compiler.cache.hooks
  const stage = { name: PLUGIN, stage: STAGE_DISK }
  hooks.get.tapPromise(stage, (identifier, etag, gotHandlers) =>
    cache.restore(identifier, etag).then((data) => {
      if (data !== undefined) return data
      gotHandlers.push((result, callback) => {
        if (result !== undefined) cache.store(identifier, etag, result)
        callback()
      })
    }),
  )
  hooks.store.tap(stage, (identifier, etag, data) => cache.store(identifier, etag, data))
  hooks.storeBuildDependencies.tap(stage, (deps, optional) => cache.addBuildDependencies(deps, optional))
  hooks.beginIdle.tap(stage, () => cache.beginIdle())
  hooks.endIdle.tap(stage, () => cache.endIdle())
  hooks.shutdown.tapPromise(stage, () => cache.shutdown())
}

/** One compiler's persistent cache. */
class PackcacheCache {
  constructor(compiler, options) {
    this.compiler = compiler
    this.options = options
    this.logger = compiler.getInfrastructureLogger(PLUGIN)
    this.opening = null
    this.handle = null
    this.groups = null
    this.deps = null
    this.timer = null
    this.stored = false // a persist has run in this process
    this.work = Promise.resolve() // persists, one at a time
  }

  /** Opens the store and restores the index; runs once, early. */
  open() {
    this.opening ??= this.restoreIndex().catch((error) => {
      this.logger.warn(`cache unavailable, building without it: ${describe(error)}`)
      this.groups = null
    })
    return this.opening
  }

  async restoreIndex() {
    const started = Date.now()
    const { compiler, options } = this
    const name = options.name ?? `${compiler.name ?? 'default'}-${compiler.options.mode ?? 'production'}`
    const dir = options.cacheDirectory ?? path.join(compiler.context, 'node_modules', '.cache', 'packcache-webpack')
    const webpack = compiler.webpack
    const version = `${FORMAT}:${webpack.version}:${options.version}`
    this.handle = acquireStorage(path.resolve(dir), version, { compression: options.compression })
    const storage = this.handle.storage
    const scope = scopeName(name)
    const serializer = webpack.util.serialization.buffersSerializer
    const fresh = () => {
      this.deps = new BuildDependencies({ compiler, storage, scope, logger: this.logger, options })
      this.groups = new EntryGroups({ storage, scope, serializer, logger: this.logger, options })
    }
    fresh()
    let restored = { entries: 0, groups: 0, bytes: 0 }
    try {
      if (await this.deps.restore()) restored = await this.groups.restore()
    } catch (error) {
      // Unreadable (damaged) cache: start empty; the next store rewrites it.
      this.logger.warn(`cache unreadable, starting with an empty one: ${describe(error)}`)
      fresh()
    }
    this.logger.log(
      `restored ${restored.entries} entries in ${restored.groups} groups (${mib(restored.bytes)} MiB) ` +
        `from ${dir} in ${Date.now() - started} ms`,
    )
  }

  async restore(identifier, etag) {
    await this.open()
    if (!this.groups) return undefined
    try {
      return await this.groups.get(identifier, etag === null ? null : etag.toString())
    } catch (error) {
      this.logger.warn(`restoring ${identifier} failed: ${describe(error)}`)
      return undefined
    }
  }

  store(identifier, etag, data) {
    if (this.options.readonly) return
    this.groups?.put(identifier, etag === null ? null : etag.toString(), data)
  }

  addBuildDependencies(deps, optional) {
    if (!this.options.readonly) this.deps?.add(deps, optional)
  }

  beginIdle() {
    const delay = this.stored ? this.options.idleTimeout : this.options.idleTimeoutForInitialStore
    this.endIdle()
    if (!(delay < Infinity)) return
    this.timer = setTimeout(() => {
      this.timer = null
      this.persist()
    }, delay)
    this.timer.unref()
  }

  endIdle() {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }

  async shutdown() {
    this.endIdle()
    await this.persist()
    const handle = this.handle
    this.handle = null
    this.groups = null
    this.opening = null
    await handle?.release()
  }

  /** Writes what changed since the last persist; queued behind a running one. */
  persist() {
    this.work = this.work.then(() => this.persistNow())
    return this.work
  }

  async persistNow() {
    await this.open()
    if (!this.groups || this.options.readonly) return
    const started = Date.now()
    try {
      const depsChanged = await this.deps.capture()
      const written = await this.groups.write(depsChanged)
      if (!written && !depsChanged) return
      const saved = await this.handle.storage.save()
      this.stored = true
      this.logger.log(
        `stored ${written?.entries ?? 0} entries in ${written?.groups ?? 0} new groups, ` +
          `${written?.expired ?? 0} expired, ${mib(saved.bytesWritten)} MiB written in ${Date.now() - started} ms`,
      )
    } catch (error) {
      this.logger.warn(`storing the cache failed: ${describe(error)}`)
    }
  }
}

/** A store scope name from a cache name (scopes allow [A-Za-z0-9_.-]). */
function scopeName(name) {
  const safe = String(name).replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 80)
  return safe === name ? `webpack.${safe}` : `webpack.${safe}.${hash(String(name)).slice(0, 8)}`
}

function mib(bytes) {
  return (bytes / 1048576).toFixed(1)
}

function describe(error) {
  return `${error?.message ?? error}${error?.code ? ` (${error.code})` : ''}`
}

module.exports = { PackcacheWebpackPlugin, default: PackcacheWebpackPlugin }
