// Build dependencies of a webpack cache, validated as webpack's own
// `cache.buildDependencies` are: webpack's FileSystemInfo resolves them (the
// config file, loaders, and every file they require, package by package),
// and packcache's native fingerprints check them on the next start (a stat
// per file, content hashed only when size or mtime moved).
'use strict'

const path = require('node:path')
const { fingerprint, changedFiles, fingerprintEntries } = require('../loader.js')

const META = 'build'
const BUILD_SNAPSHOT = 'build.snapshot'
const RESOLVE_SNAPSHOT = 'resolve.snapshot'

class BuildDependencies {
  constructor({ compiler, storage, scope, logger, options }) {
    this.compiler = compiler
    this.storage = storage
    this.scope = `${scope}.meta`
    this.logger = logger
    this.known = new Set() // dependencies resolved into the snapshot
    this.fresh = new Set() // dependencies not yet resolved
    this.optional = new Set()
    this.resolveResults = new Map()
    this.buildPaths = new Set() // what the build snapshot covers
    this.resolvePaths = new Set()
    this.valid = false
    for (const list of Object.values(options.buildDependencies ?? {})) {
      for (const item of list) {
        // Strings as configured, or `{ dependency, optional }` as webpack normalizes them.
        const dep = typeof item === 'string' ? item : item.dependency
        this.fresh.add(dep)
        if (item.optional) this.optional.add(dep)
      }
    }
    this.webpackLib = webpackLibDirectory(compiler)
    this.fresh.add(this.webpackLib)
    this.fileSystemInfo = null
  }

  add(deps, optional) {
    for (const dep of deps) if (!this.known.has(dep)) this.fresh.add(dep)
    for (const dep of optional ?? []) this.optional.add(dep)
  }

  /** Whether the stored cache may be used: its build dependencies are unchanged. */
  async restore() {
    const [meta, buildSnap, resolveSnap] = await this.storage.getMany(this.scope, [META, BUILD_SNAPSHOT, RESOLVE_SNAPSHOT])
    if (!meta || !buildSnap || !resolveSnap) return false
    const stored = JSON.parse(meta.toString())
    const changed = await changedFiles(buildSnap)
    if (changed.length > 0) {
      this.logger.log(`build dependencies changed (${preview(changed)}): starting with an empty cache`)
      return false
    }
    const resolveResults = new Map(stored.resolveResults)
    const moved = await changedFiles(resolveSnap)
    if (moved.length > 0 && !(await this.resolvesTheSame(resolveResults))) {
      this.logger.log(`build dependencies resolve to other files (${preview(moved)}): starting with an empty cache`)
      return false
    }
    this.resolveResults = resolveResults
    this.buildPaths = new Set(fingerprintEntries(buildSnap).map((e) => e.path))
    this.resolvePaths = new Set(fingerprintEntries(resolveSnap).map((e) => e.path))
    for (const dep of stored.dependencies) this.known.add(dep)
    for (const dep of this.known) this.fresh.delete(dep)
    if (moved.length > 0) {
      // Resolution inputs moved but results held: take a fresh resolve snapshot at the next store.
      for (const dep of this.known) this.fresh.add(dep)
      this.known.clear()
    }
    this.valid = true
    return true
  }

  /** Resolves new dependencies and stores the snapshots; whether anything was written. */
  async capture() {
    if (this.fresh.size === 0 && this.valid) return false
    const deps = [...this.fresh]
    const optional = new Set(deps.filter((d) => this.optional.has(d)))
    const result = await this.resolve(new Set(deps), optional)
    for (const [key, value] of result.resolveResults) this.resolveResults.set(key, value)
    for (const file of result.files) this.buildPaths.add(file)
    for (const file of result.missing) this.buildPaths.add(file)
    // A managed package directory counts by its package.json (name and version).
    for (const dir of result.directories) this.buildPaths.add(path.join(dir, 'package.json'))
    for (const set of [result.resolveDependencies.files, result.resolveDependencies.missing]) {
      for (const file of set) this.resolvePaths.add(file)
    }
    for (const dir of result.resolveDependencies.directories) this.resolvePaths.add(dir)
    // Directories among these are lookup locations: their existence counts, not their entries.
    const existence = { listDirectories: false }
    const [buildSnap, resolveSnap] = await Promise.all([
      fingerprint([...this.buildPaths].filter(path.isAbsolute), existence),
      fingerprint([...this.resolvePaths].filter(path.isAbsolute), existence),
    ])
    for (const dep of deps) {
      this.known.add(dep)
      this.fresh.delete(dep)
    }
    const meta = { dependencies: [...this.known], resolveResults: [...this.resolveResults] }
    this.storage.set(this.scope, META, Buffer.from(JSON.stringify(meta)))
    this.storage.set(this.scope, BUILD_SNAPSHOT, buildSnap)
    this.storage.set(this.scope, RESOLVE_SNAPSHOT, resolveSnap)
    this.valid = true
    return true
  }

  info() {
    if (!this.fileSystemInfo) {
      const { compiler } = this
      const FileSystemInfo = require(path.join(this.webpackLib, 'FileSystemInfo.js'))
      this.fileSystemInfo = new FileSystemInfo(compiler.intermediateFileSystem ?? compiler.inputFileSystem, {
        managedPaths: compiler.options.snapshot?.managedPaths,
        immutablePaths: compiler.options.snapshot?.immutablePaths,
        logger: this.logger.getChildLogger?.('FileSystemInfo') ?? this.logger,
        hashFunction: compiler.options.output?.hashFunction,
      })
    }
    return this.fileSystemInfo
  }

  resolve(deps, optional) {
    const info = this.info()
    const context = this.compiler.context
    return new Promise((resolve, reject) => {
      const done = (error, result) => (error ? reject(error) : resolve(result))
      if (info.resolveBuildDependencies.length >= 4) info.resolveBuildDependencies(context, deps, optional, done)
      else info.resolveBuildDependencies(context, deps, done)
    })
  }

  resolvesTheSame(resolveResults) {
    return new Promise((resolve) => {
      this.info().checkResolveResultsValid(resolveResults, (error, valid) => resolve(!error && valid))
    })
  }
}

/** webpack's `lib/` directory, trailing separator included (a directory dependency). */
function webpackLibDirectory(compiler) {
  for (const [file, mod] of Object.entries(require.cache)) {
    if (mod.exports === compiler.webpack && file.endsWith(`${path.sep}index.js`)) return path.dirname(file) + path.sep
  }
  const pkg = require.resolve('webpack/package.json', { paths: [compiler.context, process.cwd()] })
  return path.join(path.dirname(pkg), 'lib') + path.sep
}

function preview(paths) {
  return paths.slice(0, 3).join(', ') + (paths.length > 3 ? `, … ${paths.length - 3} more` : '')
}

module.exports = { BuildDependencies }
