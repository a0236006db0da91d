import test from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { PackStorage, hash, tempRoot, listTree } from './helpers.mjs'

test('a relative root is resolved once: a chdir later moves nothing and loses nothing', async (t) => {
  const parent = tempRoot(t)
  const first = path.join(parent, 'first')
  const second = path.join(parent, 'second')
  fs.mkdirSync(first)
  fs.mkdirSync(second)
  const cwd = process.cwd()
  t.after(() => process.chdir(cwd))
  process.chdir(first)
  // packSize 64: every few sets fill a chunk, staged to a file under `first`.
  const s = new PackStorage({ root: '.cache', version: '1', packSize: 64 })
  for (let i = 0; i < 10; i++) s.set('s', `key-${i}`, Buffer.alloc(40, i))
  process.chdir(second)
  for (let i = 10; i < 12; i++) s.set('s', `key-${i}`, Buffer.alloc(40, i))
  const stats = await s.save()
  assert.equal(stats.itemsWritten >= 12, true, `itemsWritten ${stats.itemsWritten}`)
  await s.close()
  assert.deepEqual(listTree(second), [])
  const back = new PackStorage({ root: path.join(first, '.cache'), version: '1' })
  const pairs = await back.load('s')
  assert.equal(pairs.length, 12)
  for (const [k, v] of pairs) assert.deepEqual(v, Buffer.alloc(40, Number(k.toString().slice(4))))
})

const versionDir = (root, version) => path.join(root, `pc3-${hash(version).slice(0, 32)}`)

/** A cache with one saved generation, and a file outside it that nothing may touch. */
async function plantedCache(t) {
  const parent = tempRoot(t)
  const root = path.join(parent, 'cache')
  const outside = path.join(parent, 'outside')
  fs.mkdirSync(outside)
  const precious = path.join(outside, 'precious.txt')
  fs.writeFileSync(precious, 'precious')
  const old = new Date('2001-02-03T04:05:06Z')
  fs.utimesSync(precious, old, old)
  const s = new PackStorage({ root, version: '1' })
  s.set('s', 'k', Buffer.from('v0'))
  await s.save()
  await s.close()
  const untouched = () => {
    assert.equal(fs.readFileSync(precious, 'utf8'), 'precious')
    assert.equal(fs.statSync(precious).mtimeMs, old.getTime())
    assert.deepEqual(fs.readdirSync(outside).sort(), ['precious.txt'])
  }
  return { root, dir: versionDir(root, '1'), outside, precious, untouched }
}

test('symlinks planted under guessable temp names are never written through', async (t) => {
  const { root, dir, precious, untouched } = await plantedCache(t)
  for (let n = 0; n < 200; n++) fs.symlinkSync(precious, path.join(dir, `MANIFEST.tmp-${process.pid}-${n}`))
  const s = new PackStorage({ root, version: '1' })
  for (let i = 1; i <= 5; i++) {
    s.set('s', 'k', Buffer.from(`v${i}`))
    await s.save()
  }
  untouched()
  assert.equal(fs.lstatSync(path.join(dir, 'MANIFEST')).isFile(), true)
  assert.equal((await new PackStorage({ root, version: '1' }).get('s', 'k')).toString(), 'v5')
  // Foreign entries: ignored by GC, links included.
  assert.equal(fs.readdirSync(dir).filter((n) => n.includes('.tmp-')).length, 200)
})

test('a dangling LOCK symlink is reported and nothing is created at its target', async (t) => {
  const { root, dir, outside, untouched } = await plantedCache(t)
  fs.rmSync(path.join(dir, 'LOCK'), { force: true })
  fs.symlinkSync(path.join(outside, 'created-by-lock'), path.join(dir, 'LOCK'))
  const s = new PackStorage({ root, version: '1' })
  s.set('s', 'k', Buffer.from('v1'))
  await assert.rejects(s.save(), { code: 'PACKCACHE_IO' })
  untouched()
  fs.unlinkSync(path.join(dir, 'LOCK'))
  await s.save() // the kept update commits once the link is gone
  assert.equal((await s.get('s', 'k')).toString(), 'v1')
  untouched()
})

test("a MANIFEST symlink: its target's mtime is not touched and a save replaces the link", async (t) => {
  const { root, dir, outside, untouched } = await plantedCache(t)
  const moved = path.join(outside, 'manifest-copy')
  fs.renameSync(path.join(dir, 'MANIFEST'), moved)
  fs.symlinkSync(moved, path.join(dir, 'MANIFEST'))
  const old = new Date('2002-02-02T02:02:02Z')
  fs.utimesSync(moved, old, old)
  const before = fs.readFileSync(moved)
  const s = new PackStorage({ root, version: '1' })
  assert.equal((await s.load('s')).length, 1)
  assert.equal(fs.statSync(moved).mtimeMs, old.getTime())
  s.set('s', 'k', Buffer.from('v1'))
  await s.save()
  assert.equal(fs.lstatSync(path.join(dir, 'MANIFEST')).isFile(), true)
  assert.deepEqual(fs.readFileSync(moved), before)
  assert.equal(fs.statSync(moved).mtimeMs, old.getTime())
  fs.rmSync(moved)
  untouched()
})

test('a version directory that is a symlink gets nothing written or deleted in its target', async (t) => {
  const { root, dir, outside, untouched } = await plantedCache(t)
  fs.rmSync(dir, { recursive: true })
  // Names GC would delete in a directory of its own.
  fs.writeFileSync(path.join(outside, `${'a'.repeat(32)}.pack`), 'orphan?')
  fs.writeFileSync(path.join(outside, 'MANIFEST.tmp-1-1'), 'temp?')
  const listed = fs.readdirSync(outside).sort()
  fs.symlinkSync(outside, dir)
  const s = new PackStorage({ root, version: '1', packSize: 64 })
  for (let i = 0; i < 20; i++) s.set('s', `k${i}`, Buffer.alloc(100, i))
  await assert.rejects(s.save(), { code: 'PACKCACHE_IO', message: /symbolic link/ })
  assert.deepEqual(fs.readdirSync(outside).sort(), listed)
  // Other versions' saves (which expire old ones) leave it alone too.
  const other = new PackStorage({ root, version: '2', expire: 0 })
  other.set('s', 'k', Buffer.from('v'))
  await other.save()
  assert.deepEqual(fs.readdirSync(outside).sort(), listed)
  fs.rmSync(path.join(outside, `${'a'.repeat(32)}.pack`))
  fs.rmSync(path.join(outside, 'MANIFEST.tmp-1-1'))
  untouched()
})

test('GC deletes only temp files of the documented name patterns', async (t) => {
  const { root, dir } = await plantedCache(t)
  const foreign = ['notes.tmp-backup', 'MANIFEST.tmp-notes', 'x.tmp-1-2', `${'b'.repeat(32)}.pack.tmp-`]
  const ours = ['MANIFEST.tmp-123-4', 'MANIFEST.tmp-0123456789abcdef', `${'c'.repeat(32)}.pack.tmp-fedcba9876543210`]
  for (const name of [...foreign, ...ours]) fs.writeFileSync(path.join(dir, name), 'x')
  const s = new PackStorage({ root, version: '1' })
  s.set('s', 'k', Buffer.from('v1'))
  await s.save()
  const left = new Set(fs.readdirSync(dir))
  for (const name of foreign) assert.ok(left.has(name), `${name} deleted`)
  for (const name of ours) assert.ok(!left.has(name), `${name} kept`)
})
