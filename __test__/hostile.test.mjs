import test from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { PackStorage, hash, tempRoot, listTree } from './helpers.mjs'

test('hostile scope names are rejected and write nothing', async (t) => {
  const parent = tempRoot(t)
  const root = path.join(parent, 'cache')
  const s = new PackStorage({ root, version: '1' })
  await s.save() // an empty save may create the version's LOCK: before the baseline
  const before = listTree(parent)
  for (const bad of ['a/b', '/abs', 'a\\b', '..', '../../etc', '.', 'nul\0byte', 'x'.repeat(10000), '', ' ', 'é']) {
    assert.throws(() => s.set(bad, 'k', Buffer.from('v')), { code: 'PACKCACHE_INVALID_ARG' })
    assert.throws(() => s.remove(bad, 'k'), { code: 'PACKCACHE_INVALID_ARG' })
    await assert.rejects(s.get(bad, 'k'), { code: 'PACKCACHE_INVALID_ARG' })
    await assert.rejects(s.reset(bad), { code: 'PACKCACHE_INVALID_ARG' })
    await assert.rejects(s.loadMany(['ok', bad]), { code: 'PACKCACHE_INVALID_ARG' })
  }
  await s.save()
  assert.deepEqual(listTree(parent), before)
})

test('version strings with path characters stay inside root', async (t) => {
  const parent = tempRoot(t)
  const root = path.join(parent, 'cache')
  for (const version of ['../../escape', '/etc/passwd', 'C:\\Windows', 'a\0b', '', '.', 'v'.repeat(4000)]) {
    const s = new PackStorage({ root, version })
    s.set('s', 'k', Buffer.from(version))
    await s.save()
    assert.equal((await new PackStorage({ root, version }).get('s', 'k')).toString(), version)
  }
  assert.deepEqual(fs.readdirSync(parent), ['cache'])
  for (const entry of fs.readdirSync(root)) assert.match(entry, /^pc3-[0-9a-f]{32}$/)
  assert.throws(() => new PackStorage({ root, version: 'v'.repeat(5000) }), { code: 'PACKCACHE_INVALID_ARG' })
})

test('empty and 512 MiB keys and values round trip', async (t) => {
  const root = tempRoot(t)
  const big = Buffer.alloc(512 * 1024 * 1024)
  for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 0xff
  const s = new PackStorage({ root, version: '1' })
  s.set('s', Buffer.alloc(0), Buffer.alloc(0))
  s.set('s', 'big-value', big)
  s.set('s', big, Buffer.from('big key'))
  await s.save()
  await s.close()
  const r = new PackStorage({ root, version: '1' })
  const pairs = await r.load('s')
  assert.equal(pairs.length, 3)
  const byLen = new Map(pairs.map(([k, v]) => [k.length === big.length ? 'bigkey' : k.toString(), v]))
  assert.equal(byLen.get('').length, 0)
  assert.equal(hash(byLen.get('big-value')), hash(big))
  assert.equal(byLen.get('bigkey').toString(), 'big key')
  assert.equal(hash(await r.get('s', 'big-value')), hash(big))
})

test('a root that is a file is a clear PACKCACHE_IO error', (t) => {
  const file = path.join(tempRoot(t), 'file')
  fs.writeFileSync(file, 'not a directory')
  assert.throws(() => new PackStorage({ root: file, version: '1' }), { code: 'PACKCACHE_IO' })
  assert.throws(() => new PackStorage({ root: path.join(file, 'below'), version: '1' }), { code: 'PACKCACHE_IO' })
  assert.equal(fs.readFileSync(file, 'utf8'), 'not a directory')
})

test('a root that is a symlink is followed and nothing lands beside it', async (t) => {
  const parent = tempRoot(t)
  const target = path.join(parent, 'real-cache')
  fs.mkdirSync(target)
  const link = path.join(parent, 'tree', 'cache-link')
  fs.mkdirSync(path.dirname(link))
  fs.symlinkSync(target, link)
  const s = new PackStorage({ root: link, version: '1' })
  s.set('s', 'k', Buffer.from('v'))
  await s.save()
  assert.equal((await new PackStorage({ root: target, version: '1' }).get('s', 'k')).toString(), 'v')
  assert.deepEqual(fs.readdirSync(path.join(parent, 'tree')), ['cache-link'])
})

test('foreign files, stale temp files and newer-format directories are handled safely', async (t) => {
  const root = tempRoot(t)
  const s = new PackStorage({ root, version: '1', expire: 0 })
  s.set('s', 'k', Buffer.from('v'))
  await s.save()
  const own = path.join(root, fs.readdirSync(root)[0])
  const newer = path.join(root, 'pc4-' + 'a'.repeat(32))
  fs.mkdirSync(newer)
  fs.writeFileSync(path.join(newer, 'MANIFEST'), 'a future format')
  fs.mkdirSync(path.join(root, 'other-tool'))
  for (const f of ['.DS_Store', 'notes.txt']) fs.writeFileSync(path.join(root, f), 'foreign')
  for (const f of ['.DS_Store', 'README', 'x.pack.bak']) fs.writeFileSync(path.join(own, f), 'foreign')
  fs.writeFileSync(path.join(own, 'MANIFEST.tmp-999999-1'), 'left by a crash')
  fs.writeFileSync(path.join(own, '0'.repeat(32) + '.pack'), 'unreferenced pack')
  const old = new Date(Date.now() - 86400e3)
  fs.utimesSync(newer, old, old)

  s.set('s', 'k2', Buffer.from('v2'))
  const stats = await s.save()
  assert.equal(stats.packsRemoved, 1)
  assert.equal(stats.versionsExpired, 0)
  assert.deepEqual(fs.readdirSync(root).sort(), ['.DS_Store', fs.readdirSync(root).find((e) => e.startsWith('pc3-')), 'notes.txt', 'other-tool', path.basename(newer)].sort())
  const ownFiles = fs.readdirSync(own)
  for (const f of ['.DS_Store', 'README', 'x.pack.bak']) assert.ok(ownFiles.includes(f), f)
  assert.ok(!ownFiles.includes('MANIFEST.tmp-999999-1'))
  assert.ok(!ownFiles.includes('0'.repeat(32) + '.pack'))
  assert.equal(fs.readFileSync(path.join(newer, 'MANIFEST'), 'utf8'), 'a future format')
  assert.equal((await new PackStorage({ root, version: '1' }).get('s', 'k2')).toString(), 'v2')
})
