// What the bundler plugins share: one PackStorage per cache directory and
// version in a process, and last-used times with expiry of unused entries.
'use strict'

const { PackStorage } = require('../loader.js')

const open = new Map()

/**
 * A PackStorage for `root`, shared by every plugin instance of this process
 * that names the same directory and version (a multi-compiler config, a
 * watch rebuild; the first one's `options` apply). `release()` closes it once
 * its last user is done.
 */
function acquireStorage(root, version, options = {}) {
  const id = `${root}\0${version}`
  let entry = open.get(id)
  if (!entry) {
    entry = { storage: new PackStorage({ ...options, root, version }), users: 0 }
    open.set(id, entry)
  }
  entry.users++
  let released = false
  return {
    storage: entry.storage,
    async release() {
      if (released) return
      released = true
      if (--entry.users > 0) return
      open.delete(id)
      await entry.storage.close()
    },
  }
}

const MINUTE = 60_000
/** A last-used time is written again only when it is older than this. */
const TOUCH_GRANULARITY = 60 * MINUTE
/** Expiry reads every last-used time: at most this often. */
const PRUNE_EVERY = 60 * MINUTE

/**
 * Last-used times of a scope's entries, kept in the scope `<scope>.used`
 * (one 4-byte value per key: minutes since the epoch), so entries nobody has
 * used for `maxAge` can be dropped without reading their values.
 */
class Usage {
  constructor(storage, scope) {
    this.storage = storage
    this.scope = scope
    this.usedScope = `${scope}.used`
    this.metaScope = `${scope}.meta`
    this.touched = new Map() // hex key -> Buffer key
  }

  touch(key) {
    this.touched.set(key.toString('hex'), key)
  }

  /** Records this session's uses; writes a time only where it moved by an hour. */
  async flush(now = Date.now()) {
    const keys = [...this.touched.values()]
    this.touched.clear()
    if (keys.length === 0) return 0
    const stamps = await this.storage.getMany(this.usedScope, keys)
    const minutes = Math.floor(now / MINUTE)
    const stamp = Buffer.alloc(4)
    stamp.writeUInt32LE(minutes)
    let written = 0
    keys.forEach((key, i) => {
      const old = stamps[i]?.length === 4 ? stamps[i].readUInt32LE(0) : -Infinity
      if ((minutes - old) * MINUTE < TOUCH_GRANULARITY) return
      this.storage.set(this.usedScope, key, stamp)
      written++
    })
    return written
  }

  /** Forgets every last-used time (a damaged scope is replaced by an empty one). */
  async reset() {
    this.touched.clear()
    await this.storage.reset(this.usedScope)
    await this.storage.reset(this.metaScope)
  }

  /**
   * Removes the entries (from `scope` and the extra `alsoFrom` scopes) not
   * used for `maxAge` ms. Entries without a recorded use are left alone.
   * Runs at most once per `PRUNE_EVERY` (or `maxAge`, if shorter).
   */
  async prune(maxAge, now = Date.now(), alsoFrom = []) {
    if (!(maxAge < Infinity)) return 0
    const [last] = await this.storage.getMany(this.metaScope, ['pruned'])
    if (last?.length === 8 && now - last.readDoubleLE(0) < Math.min(PRUNE_EVERY, maxAge)) return 0
    const stamp = Buffer.alloc(8)
    stamp.writeDoubleLE(now)
    this.storage.set(this.metaScope, 'pruned', stamp)
    const oldest = Math.floor((now - maxAge) / MINUTE)
    let removed = 0
    for (const [key, stamp] of await this.storage.load(this.usedScope)) {
      if (stamp.length === 4 && stamp.readUInt32LE(0) >= oldest) continue
      for (const scope of [this.scope, this.usedScope, ...alsoFrom]) this.storage.remove(scope, key)
      removed++
    }
    return removed
  }
}

/** A stable JSON text for fingerprinting options (object keys sorted; functions by source). */
function stableStringify(value) {
  const seen = new WeakSet()
  const walk = (v) => {
    if (typeof v === 'function') return `[function ${v.toString()}]`
    if (typeof v === 'bigint') return `${v}n`
    if (v instanceof RegExp) return `[regexp ${v}]`
    if (v === undefined) return '[undefined]'
    if (v === null || typeof v !== 'object') return v
    if (seen.has(v)) return '[cycle]'
    seen.add(v)
    const out = Array.isArray(v) ? v.map(walk) : Object.fromEntries(Object.keys(v).sort().map((k) => [k, walk(v[k])]))
    seen.delete(v)
    return out
  }
  return JSON.stringify(walk(value))
}

module.exports = { acquireStorage, Usage, stableStringify }
