// The systems under test, each driven the way a bundler would use it.
// Every method receives the cache directory; `scopes` is the workload.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { workloadFile } from './workload.mjs'

const require = createRequire(import.meta.url)

function packcache(compression, columns = false) {
  const { PackStorage } = require('../index.js')
  const open = (dir) => new PackStorage({ root: dir, version: 'bench', compression })
  return {
    async save(dir, scopes) {
      const s = open(dir)
      for (const { name, items } of scopes) for (const [k, v] of items) s.set(name, k, v)
      const stats = await s.save()
      await s.close()
      return stats.bytesWritten
    },
    async load(dir, names, touch) {
      const s = open(dir)
      if (columns) {
        // Every pair touched once through its part's buffer and offsets.
        const all = await s.loadColumns(names)
        all.forEach(touch.columns)
        return
      }
      const all = await s.loadMany(names)
      all.forEach(touch)
    },
    async inc(dir, { sets, removes }) {
      const s = open(dir)
      for (const [name, k, v] of sets) s.set(name, k, v)
      for (const [name, k] of removes) s.remove(name, k)
      const stats = await s.save()
      await s.close()
      return stats.bytesWritten
    },
    async openForGet(dir) {
      const s = open(dir)
      return (name, key) => s.get(name, key)
    },
    async openForGetMany(dir) {
      const s = open(dir)
      return (name, keys) => s.getMany(name, keys)
    },
  }
}

function lmdb(compression) {
  const { open } = require('lmdb')
  const env = (dir) => open({ path: path.join(dir, 'lmdb'), compression, keyEncoding: 'binary', encoding: 'binary', maxDbs: 16 })
  return {
    async save(dir, scopes) {
      const root = env(dir)
      await root.transaction(() => {
        for (const { name, items } of scopes) {
          const db = root.openDB(name, { keyEncoding: 'binary', encoding: 'binary', compression })
          for (const [k, v] of items) db.put(k, v)
        }
      })
      await root.close()
    },
    async load(dir, names, touch) {
      const root = env(dir)
      for (const name of names) {
        const db = root.openDB(name, { keyEncoding: 'binary', encoding: 'binary', compression })
        const pairs = []
        for (const { key, value } of db.getRange()) pairs.push([key, value])
        touch(pairs)
      }
    },
    async inc(dir, { sets, removes }) {
      const root = env(dir)
      const dbs = new Map()
      const db = (name) => dbs.get(name) ?? dbs.set(name, root.openDB(name, { keyEncoding: 'binary', encoding: 'binary', compression })).get(name)
      await root.transaction(() => {
        for (const [name, k, v] of sets) db(name).put(k, v)
        for (const [name, k] of removes) db(name).remove(k)
      })
      await root.close()
    },
    async openForGet(dir) {
      const root = env(dir)
      const dbs = new Map()
      const db = (name) => dbs.get(name) ?? dbs.set(name, root.openDB(name, { keyEncoding: 'binary', encoding: 'binary', compression })).get(name)
      return (name, key) => db(name).getBinary(key) ?? null
    },
  }
}

/** Whole-scope files: webpack's serializer or a plain length-prefixed format. */
function scopeFiles(write, read) {
  const file = (dir, name) => path.join(dir, `${name}.pack`)
  const loadScope = async (dir, name) => (fs.existsSync(file(dir, name)) ? read(file(dir, name)) : [])
  return {
    async save(dir, scopes) {
      fs.mkdirSync(dir, { recursive: true })
      for (const { name, items } of scopes) await write(file(dir, name), items)
    },
    async load(dir, names, touch) {
      for (const name of names) touch(await loadScope(dir, name))
    },
    async prepareInc(dir, names) {
      const data = new Map()
      for (const name of names) data.set(name, new Map((await loadScope(dir, name)).map(([k, v]) => [k.toString('latin1'), [k, v]])))
      return data
    },
    async inc(dir, { sets, removes }, data) {
      const touched = new Set()
      for (const [name, k, v] of sets) (data.get(name).set(k.toString('latin1'), [k, v]), touched.add(name))
      for (const [name, k] of removes) (data.get(name).delete(k.toString('latin1')), touched.add(name))
      let written = 0
      for (const name of touched) {
        await write(file(dir, name), [...data.get(name).values()])
        written += fs.statSync(file(dir, name)).size
      }
      return written
    },
    async openForGet(dir) {
      const cache = new Map()
      return async (name, key) => {
        if (!cache.has(name)) cache.set(name, new Map((await loadScope(dir, name)).map(([k, v]) => [k.toString('latin1'), v])))
        return cache.get(name).get(key.toString('latin1')) ?? null
      }
    },
  }
}

function webpackSerializer() {
  const webpack = require('webpack')
  const ser = webpack.util.serialization.createFileSerializer(fs, 'md4')
  const opts = (filename) => ({ filename, extension: '.pack', logger: { time() {}, timeEnd() {}, log() {}, debug() {} } })
  return scopeFiles(
    (filename, items) => ser.serialize(items.flat(), opts(filename)),
    async (filename) => {
      const flat = await ser.deserialize(null, opts(filename))
      const pairs = []
      for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i], flat[i + 1]])
      return pairs
    },
  )
}

function plain() {
  return scopeFiles(
    async (filename, items) => {
      let size = 4
      for (const [k, v] of items) size += 8 + k.length + v.length
      const buf = Buffer.allocUnsafe(size)
      let o = buf.writeUInt32LE(items.length, 0)
      for (const [k, v] of items) {
        o = buf.writeUInt32LE(k.length, o)
        o += k.copy(buf, o)
        o = buf.writeUInt32LE(v.length, o)
        o += v.copy(buf, o)
      }
      await fs.promises.writeFile(filename, buf)
    },
    async (filename) => {
      const buf = await fs.promises.readFile(filename)
      const pairs = new Array(buf.readUInt32LE(0))
      let o = 4
      for (let i = 0; i < pairs.length; i++) {
        const kl = buf.readUInt32LE(o)
        const k = buf.subarray(o + 4, o + 4 + kl)
        o += 4 + kl
        const vl = buf.readUInt32LE(o)
        pairs[i] = [k, buf.subarray(o + 4, o + 4 + vl)]
        o += 4 + vl
      }
      return pairs
    },
  )
}

/** The binary `bench/rspack-storage` builds (see there and bench/README). */
export const rspackPeerBin = path.join(path.dirname(fileURLToPath(import.meta.url)), 'rspack-storage', 'target', 'release', 'packcache-rspack-peer')

/** rspack's cache storage, in Rust with no JS crossing: each operation runs in
 * that binary, which times it itself (its figures exclude its start and the
 * read of its input file). There is no single-key read in its API. */
function rspackStorage() {
  const run = (...args) => JSON.parse(execFileSync(rspackPeerBin, args, { encoding: 'utf8', maxBuffer: 1 << 20 }).trim())
  const u32 = (n) => {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(n)
    return b
  }
  const field = (b) => [u32(b.length), b]
  return {
    selfTimed: true,
    async save(dir, scopes, { n }) {
      return run('save', dir, workloadFile(n))
    },
    async load(dir, names) {
      return run('load', dir, ...names)
    },
    async inc(dir, { sets, removes }) {
      const file = path.join(path.dirname(dir), `${path.basename(dir)}.change`)
      const parts = [u32(sets.length)]
      for (const [name, k, v] of sets) parts.push(...field(Buffer.from(name)), ...field(k), ...field(v))
      parts.push(u32(removes.length))
      for (const [name, k] of removes) parts.push(...field(Buffer.from(name)), ...field(k))
      fs.writeFileSync(file, Buffer.concat(parts))
      try {
        return run('inc', dir, file)
      } finally {
        fs.rmSync(file, { force: true })
      }
    },
  }
}

export const systems = {
  // The default configuration (LZ4 since issue 13).
  packcache: () => packcache(undefined),
  'packcache-zstd': () => packcache('zstd'),
  'packcache-none': () => packcache('none'),
  'packcache-columns': () => packcache(undefined, true),
  'packcache-zstd-columns': () => packcache('zstd', true),
  'lmdb': () => lmdb(false),
  'lmdb-compressed': () => lmdb(true),
  'webpack': webpackSerializer,
  'plain': plain,
  'rspack': rspackStorage,
}
