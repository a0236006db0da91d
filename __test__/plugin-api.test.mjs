// The API the bundler plugins build on: set with Buffer[] parts, keys(),
// and file fingerprints for fine-grained invalidation.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { tempRoot } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { PackStorage, fingerprint, changedFiles, fingerprintEntries } = require('../index.js')

const open = (root) => new PackStorage({ root, version: 'v1' })

test('set_with_buffer_parts_stores_their_concatenation', async (t) => {
  const root = tempRoot(t)
  const s = open(root)
  const parts = [Buffer.from('head:'), new Uint8Array([1, 2, 3]), Buffer.alloc(0), Buffer.from('tail')]
  s.set('m', 'k', parts)
  s.set('m', 'empty', [])
  assert.deepEqual(await s.get('m', 'k'), Buffer.concat(parts), 'unsaved read')
  await s.save()
  await s.close()
  const again = open(root)
  assert.deepEqual(await again.get('m', 'k'), Buffer.concat(parts))
  assert.deepEqual(await again.get('m', 'empty'), Buffer.alloc(0))
  await again.close()
})

test('set_with_non_buffer_part_is_rejected_and_stores_nothing', async (t) => {
  const s = open(tempRoot(t))
  assert.throws(() => s.set('m', 'k', [Buffer.from('a'), 'b']), { name: 'TypeError', code: 'PACKCACHE_INVALID_ARG', message: /value\[1\]/ })
  assert.throws(() => s.set('m', 'k', { length: 1, 0: Buffer.from('a') }), { code: 'PACKCACHE_INVALID_ARG' })
  assert.equal(await s.get('m', 'k'), null)
  await s.close()
})

test('set_parts_getter_that_detaches_an_earlier_part_cannot_expose_freed_bytes', async (t) => {
  const s = open(tempRoot(t))
  const first = new Uint8Array(new ArrayBuffer(64)).fill(7)
  const parts = [first]
  Object.defineProperty(parts, 1, {
    enumerable: true,
    get: () => {
      structuredClone(first.buffer, { transfer: [first.buffer] }) // detaches `first`
      return Buffer.from('x')
    },
  })
  // Every getter runs before any part is borrowed: the detached part reads as empty.
  s.set('m', 'k', parts)
  assert.equal(first.byteLength, 0)
  assert.deepEqual(await s.get('m', 'k'), Buffer.from('x'))
  await s.close()
})

test('set_parts_getter_that_detaches_the_key_cannot_expose_freed_bytes', async (t) => {
  const s = open(tempRoot(t))
  const key = new Uint8Array(new ArrayBuffer(16)).fill(65)
  const parts = [Buffer.from('v')]
  Object.defineProperty(parts, 1, {
    enumerable: true,
    get: () => {
      structuredClone(key.buffer, { transfer: [key.buffer] }) // detaches the key
      return Buffer.from('w')
    },
  })
  // The key is read after the parts' getters ran: it is the empty key now.
  s.set('m', key, parts)
  assert.equal(key.byteLength, 0)
  assert.deepEqual((await s.keys('m')).map((k) => k.length), [0])
  assert.deepEqual(await s.get('m', ''), Buffer.from('vw'))
  await s.close()
})

test('keys_lists_live_keys_with_unsaved_updates_and_no_values', async (t) => {
  const root = tempRoot(t)
  const s = open(root)
  for (const k of ['b', 'a', 'c']) s.set('m', k, Buffer.from(k.repeat(1000)))
  s.set('other', 'z', Buffer.from('z'))
  await s.save()
  assert.deepEqual((await s.keys('m')).map(String), ['a', 'b', 'c'])
  s.remove('m', 'b')
  s.set('m', 'd', Buffer.from('d'))
  assert.deepEqual((await s.keys('m')).map(String), ['a', 'c', 'd'], 'unsaved updates applied')
  await s.save()
  await s.close()
  const again = open(root)
  assert.deepEqual((await again.keys('m')).map(String), ['a', 'c', 'd'])
  assert.deepEqual(await again.keys('never'), [])
  await again.reset('m')
  assert.deepEqual(await again.keys('m'), [])
  await again.close()
})

test('fingerprint_reports_only_changed_paths', async (t) => {
  const dir = tempRoot(t)
  const file = (n) => path.join(dir, n)
  for (const n of ['same.js', 'edited.js', 'deleted.js', 'touched.js']) fs.writeFileSync(file(n), n)
  const paths = ['same.js', 'edited.js', 'deleted.js', 'touched.js', 'created.js'].map(file)
  const snap = await fingerprint(paths)
  assert.ok(Buffer.isBuffer(snap))
  const entries = fingerprintEntries(snap)
  assert.deepEqual(entries.map((e) => e.kind), ['file', 'file', 'file', 'file', 'missing'])
  assert.equal(entries[0].size, 'same.js'.length)
  assert.equal(entries[4].hash, undefined)
  assert.match(entries[0].hash, /^[0-9a-f]{64}$/)
  assert.deepEqual(await changedFiles(snap), [])
  fs.writeFileSync(file('edited.js'), 'EDITED.JS')
  fs.rmSync(file('deleted.js'))
  fs.writeFileSync(file('touched.js'), 'touched.js')
  fs.writeFileSync(file('created.js'), '')
  assert.deepEqual(await changedFiles(snap), ['edited.js', 'deleted.js', 'created.js'].map(file))
})

test('unlisted_directory_counts_by_existence_only', async (t) => {
  const dir = tempRoot(t)
  const sub = path.join(dir, 'sub')
  fs.mkdirSync(sub)
  const listed = await fingerprint([sub])
  const unlisted = await fingerprint([sub], { listDirectories: false })
  assert.deepEqual(fingerprintEntries(unlisted).map((e) => [e.kind, e.unlisted, e.hash]), [['directory', true, undefined]])
  fs.writeFileSync(path.join(sub, 'new.js'), '')
  assert.deepEqual(await changedFiles(listed), [sub])
  assert.deepEqual(await changedFiles(unlisted), [])
  fs.rmSync(sub, { recursive: true })
  assert.deepEqual(await changedFiles(unlisted), [sub])
  assert.throws(() => fingerprint([sub], { listDirectory: false }), { code: 'PACKCACHE_INVALID_ARG', message: /listDirectory/ })
})

test('fingerprint_rejects_relative_paths_and_foreign_snapshots', async (t) => {
  await assert.rejects(fingerprint(['src/a.js']), { code: 'PACKCACHE_INVALID_ARG', message: /absolute/ })
  await assert.rejects(changedFiles(Buffer.from('PCFP nonsense')), { code: 'PACKCACHE_INVALID_ARG' })
  assert.throws(() => fingerprintEntries(Buffer.alloc(3)), { code: 'PACKCACHE_INVALID_ARG' })
  assert.throws(() => fingerprint('not an array'), { name: 'TypeError' })
})
