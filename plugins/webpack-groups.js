// Cache entries of a webpack compiler, stored in groups: the entries of one
// store are serialized together (webpack's buffersSerializer), so objects
// they share (snapshots, sources) stay shared after a restore, as in
// webpack's PackFileCacheStrategy; a group is deserialized on the first get
// of one of its entries. The index (identifier -> group, slot, etag, last
// use) is one value beside the groups.
'use strict'

const crypto = require('node:crypto')

const INDEX = 'index'
const MINUTE = 60_000
/** A last-used time is rewritten when it moved by this much. */
const TOUCH_MINUTES = 60
/** A group with fewer live entries than this share is rewritten. */
const REPACK_BELOW = 0.5

class EntryGroups {
  constructor({ storage, scope, serializer, logger, options }) {
    this.storage = storage
    this.groupsScope = `${scope}.groups`
    this.metaScope = `${scope}.meta`
    this.serializer = serializer
    this.logger = logger
    this.groupSize = options.groupSize
    this.maxAgeMinutes = options.maxAge / MINUTE
    this.index = new Map() // identifier -> { etag, group, slot, used }
    this.groups = new Map() // group id -> { size, live }
    this.raw = new Map() // group id -> serialized bytes, until decoded
    this.decoded = new Map() // group id -> Promise<[identifiers, datas] | null>
    this.pending = new Map() // identifier -> { etag, data, used }
    this.writing = new Map() // the pending entries a running write took, until they are in groups
    this.indexDirty = false
    this.sweep = true // until a valid index is restored, stored groups are unknown
  }

  /** Reads the index and the group bytes (no group is deserialized yet). */
  async restore() {
    const [indexBytes] = await this.storage.getMany(this.metaScope, [INDEX])
    if (!indexBytes) return { entries: 0, groups: 0, bytes: 0 }
    const loaded = await this.storage.load(this.groupsScope)
    const bytesOf = new Map(loaded.map(([k, v]) => [k.toString(), v]))
    let bytes = 0
    for (const [group, entries] of JSON.parse(indexBytes.toString()).groups) {
      const data = bytesOf.get(group)
      if (!data) continue // written by a process whose index lost: its entries are misses
      let live = 0
      entries.forEach(([identifier, etag, used], slot) => {
        if (identifier === null) return // superseded since the group was written
        this.index.set(identifier, { etag, group, slot, used })
        live++
      })
      this.groups.set(group, { size: entries.length, live })
      this.raw.set(group, data)
      bytes += data.length
    }
    this.sweep = bytesOf.size > this.groups.size
    return { entries: this.index.size, groups: this.groups.size, bytes }
  }

  async get(identifier, etag) {
    const fresh = this.pending.get(identifier) ?? this.writing.get(identifier)
    if (fresh) return fresh.etag === etag ? fresh.data : undefined
    const entry = this.index.get(identifier)
    if (!entry || entry.etag !== etag) return undefined
    const group = await this.decode(entry.group)
    if (!group || group[0][entry.slot] !== identifier) return undefined
    const now = nowMinutes()
    if (now - entry.used >= TOUCH_MINUTES) this.indexDirty = true
    entry.used = now
    return group[1][entry.slot]
  }

  put(identifier, etag, data) {
    this.pending.set(identifier, { etag, data, used: nowMinutes() })
  }

  decode(group) {
    let decoded = this.decoded.get(group)
    if (!decoded) {
      const bytes = this.raw.get(group)
      this.raw.delete(group)
      decoded = bytes
        ? Promise.resolve(this.serializer.deserialize([bytes], { logger: this.logger })).catch((error) => {
            this.logger.warn(`a cache group could not be read, its entries are rebuilt: ${error.message}`)
            return null
          })
        : Promise.resolve(null)
      this.decoded.set(group, decoded)
    }
    return decoded
  }

  /**
   * Puts the pending entries into new groups, drops expired entries and
   * rewrites half-dead groups. Returns what it did, or null when nothing
   * needed writing (and `force` is false).
   */
  async write(force) {
    const now = nowMinutes()
    const expired = this.expire(now)
    for (const identifier of this.pending.keys()) this.index.delete(identifier)
    await this.repack()
    if (this.pending.size === 0 && !this.indexDirty && expired === 0 && !this.sweep && !force) return null
    const entries = [...this.pending]
    this.writing = this.pending
    this.pending = new Map()
    let groups = 0
    try {
      for (const kind of byKind(entries)) {
        for (let at = 0; at < kind.length; at += this.groupSize) {
          if (await this.writeGroup(kind.slice(at, at + this.groupSize))) groups++
        }
      }
    } finally {
      this.writing = new Map()
    }
    if (this.sweep) await this.removeUnknownGroups()
    this.storage.set(this.metaScope, INDEX, Buffer.from(JSON.stringify({ groups: this.indexEntries() })))
    this.indexDirty = false
    return { entries: entries.length, groups, expired }
  }

  expire(now) {
    let expired = 0
    for (const [identifier, entry] of this.index) {
      if (now - entry.used <= this.maxAgeMinutes) continue
      this.index.delete(identifier)
      expired++
    }
    return expired
  }

  /** Drops groups without live entries; moves the live entries of mostly dead groups to pending. */
  async repack() {
    const live = new Map([...this.groups.keys()].map((g) => [g, []]))
    for (const [identifier, entry] of this.index) live.get(entry.group)?.push([identifier, entry])
    for (const [group, info] of this.groups) {
      const entries = live.get(group)
      info.live = entries.length
      if (entries.length >= info.size * REPACK_BELOW) continue
      const decoded = entries.length > 0 ? await this.decode(group) : null
      for (const [identifier, entry] of entries) {
        this.index.delete(identifier)
        if (decoded) this.pending.set(identifier, { etag: entry.etag, data: decoded[1][entry.slot], used: entry.used })
      }
      this.dropGroup(group)
    }
  }

  /** Forgets a group that failed to deserialize, and its entries. */
  dropBroken(group) {
    for (const [identifier, entry] of this.index) if (entry.group === group) this.index.delete(identifier)
    this.dropGroup(group)
  }

  dropGroup(group) {
    this.groups.delete(group)
    this.raw.delete(group)
    this.decoded.delete(group)
    this.storage.remove(this.groupsScope, group)
    this.indexDirty = true
  }

  /** Serializes entries as one group; entries that cannot be serialized are left out. */
  async writeGroup(entries) {
    let kept = entries
    let parts = await this.serialize(kept)
    if (!parts) {
      kept = []
      for (const entry of entries) if (await this.serialize([entry])) kept.push(entry)
      parts = kept.length > 0 ? await this.serialize(kept) : null
      this.logger.debug?.(`${entries.length - kept.length} cache entries are not serializable and were left out`)
    }
    if (!parts) return false
    const group = crypto.randomBytes(8).toString('hex')
    this.storage.set(this.groupsScope, group, parts)
    const ids = kept.map(([identifier]) => identifier)
    const datas = kept.map(([, entry]) => entry.data)
    this.decoded.set(group, Promise.resolve([ids, datas]))
    this.groups.set(group, { size: kept.length, live: kept.length })
    kept.forEach(([identifier, { etag, used }], slot) => this.index.set(identifier, { etag, group, slot, used }))
    return true
  }

  async serialize(entries) {
    const value = [entries.map(([identifier]) => identifier), entries.map(([, entry]) => entry.data)]
    try {
      const parts = await this.serializer.serialize(value, { logger: this.logger })
      return parts.every((p) => Buffer.isBuffer(p)) ? parts : null
    } catch {
      return null
    }
  }

  /** Removes stored groups the index does not name (a reset cache, or another process's lost write). */
  async removeUnknownGroups() {
    let keys
    try {
      keys = await this.storage.keys(this.groupsScope)
    } catch (error) {
      // A damaged scope: this save resets it (the store drops damaged packs it has read).
      this.logger.debug?.(`listing stored groups failed, sweeping next time: ${error.message}`)
      return
    }
    for (const key of keys) if (!this.groups.has(key.toString())) this.storage.remove(this.groupsScope, key)
    this.sweep = false
  }

  indexEntries() {
    const byGroup = new Map([...this.groups.keys()].map((g) => [g, []]))
    for (const [identifier, { etag, group, slot, used }] of this.index) byGroup.get(group)[slot] = [identifier, etag, used]
    // A dead slot stays as null so slots keep their positions.
    return [...byGroup].map(([group, entries]) => [group, Array.from(entries, (e) => e ?? [null, null, 0])])
  }
}

/** Kinds with at least this many entries in one store share groups. */
const MANY = 16

/**
 * Entries split by the kind their identifier starts with (`Compilation/modules|…`,
 * `Compilation/assets|…`). Per-module kinds (many entries) stay together, in
 * store order, so the objects they share stay shared. A kind with few entries
 * (per chunk: the bundle asset, its source map) gets groups of its own: an
 * edit replaces those whole, so their group dies whole instead of pinning
 * megabytes inside a group of thousands of live modules.
 */
function byKind(entries) {
  const kinds = new Map()
  for (const entry of entries) {
    const kind = kindOf(entry[0])
    let list = kinds.get(kind)
    if (!list) kinds.set(kind, (list = []))
    list.push(entry)
  }
  const many = entries.filter(([id]) => kinds.get(kindOf(id)).length >= MANY)
  const few = [...kinds.values()].filter((list) => list.length < MANY)
  return many.length > 0 ? [many, ...few] : few
}

/** `Compilation/modules` of `Compilation/modules|…`; '' for an identifier without a kind. */
function kindOf(identifier) {
  const bar = identifier.indexOf('|')
  return bar < 0 ? '' : identifier.slice(0, bar)
}

function nowMinutes() {
  return Math.floor(Date.now() / MINUTE)
}

module.exports = { EntryGroups }
