import test from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { PackStorage, hash, tempRoot, asMap, packFiles, listTree, damagePackHolding } from './helpers.mjs'

test('binary keys and values round trip across reopen', async (t) => {
  const root = tempRoot(t)
  const big = crypto.randomBytes(1024 * 1024)
  const binKey = Buffer.from([0, 255, 10, 13, 0])
  const a = new PackStorage({ root, version: '1' })
  a.set('modules', binKey, Buffer.from([1, 2, 3]))
  a.set('modules', 'ключ/модуль-π.js', Buffer.from('unicode key'))
  a.set('modules', 'empty-value', Buffer.alloc(0))
  a.set('modules', '', Buffer.from('empty key'))
  a.set('modules', 'big', big)
  a.set('modules', 'u8', new Uint8Array([9, 8, 7]))
  const stats = await a.save()
  assert.equal(stats.generation, 1)
  assert.equal(stats.itemsWritten, 6)
  assert.ok(stats.packsWritten >= 1 && stats.bytesWritten > 0)
  await a.close()

  const b = new PackStorage({ root, version: '1' })
  const pairs = await b.load('modules')
  assert.equal(pairs.length, 6)
  for (const [k, v] of pairs) assert.ok(Buffer.isBuffer(k) && Buffer.isBuffer(v))
  const m = asMap(pairs)
  assert.equal(m.get(binKey.toString('hex')), '010203')
  assert.equal(m.get(Buffer.from('ключ/модуль-π.js').toString('hex')), Buffer.from('unicode key').toString('hex'))
  assert.equal(m.get(Buffer.from('empty-value').toString('hex')), '')
  assert.equal(m.get(''), Buffer.from('empty key').toString('hex'))
  assert.equal(m.get(Buffer.from('big').toString('hex')), big.toString('hex'))
  assert.equal(m.get(Buffer.from('u8').toString('hex')), '090807')
  assert.deepEqual(await b.load('never-written'), [])
})

test('overwrite and remove persist across reopen', async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: '1' })
  for (let i = 0; i < 100; i++) a.set('s', `k${i}`, Buffer.from(`v${i}`))
  await a.save()
  a.set('s', 'k1', Buffer.from('changed'))
  a.remove('s', 'k2')
  a.remove('s', 'not-there')
  await a.save()
  const b = new PackStorage({ root, version: '1' })
  const m = asMap(await b.load('s'))
  assert.equal(m.size, 99)
  assert.equal(m.get(Buffer.from('k1').toString('hex')), Buffer.from('changed').toString('hex'))
  assert.equal(m.has(Buffer.from('k2').toString('hex')), false)
  assert.equal((await b.get('s', 'k1')).toString(), 'changed')
  assert.equal(await b.get('s', 'k2'), null)
  assert.equal((await b.get('s', Buffer.from('k99'))).toString(), 'v99')
})

test('load and get read this instance\'s unsaved writes', async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: '1' })
  a.set('s', 'saved', Buffer.from('1'))
  a.set('s', 'doomed', Buffer.from('1'))
  await a.save()
  a.set('s', 'unsaved', Buffer.from('2'))
  a.set('s', 'saved', Buffer.from('3'))
  a.remove('s', 'doomed')
  const m = asMap(await a.load('s'))
  assert.deepEqual([...m.keys()].map((k) => Buffer.from(k, 'hex').toString()).sort(), ['saved', 'unsaved'])
  assert.equal((await a.get('s', 'saved')).toString(), '3')
  assert.equal(await a.get('s', 'doomed'), null)
  const other = new PackStorage({ root, version: '1' })
  assert.equal((await other.get('s', 'saved')).toString(), '1', 'others see only committed data')
})

test('a set made while a save runs goes into the next save', async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: '1' })
  for (let i = 0; i < 2000; i++) a.set('s', `k${i}`, crypto.randomBytes(512))
  const first = a.save()
  a.set('s', 'late', Buffer.from('late'))
  assert.equal((await a.get('s', 'late')).toString(), 'late')
  await first
  assert.equal(await new PackStorage({ root, version: '1' }).get('s', 'late'), null)
  const second = await a.save()
  assert.equal(second.itemsWritten, 1)
  assert.equal((await new PackStorage({ root, version: '1' }).get('s', 'late')).toString(), 'late')
})

test('overlapping saves commit in call order', async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: '1' })
  const saves = []
  for (let i = 0; i < 6; i++) {
    a.set('s', 'k', Buffer.from(String(i)))
    saves.push(a.save())
  }
  const gens = (await Promise.all(saves)).map((s) => s.generation)
  assert.deepEqual(gens, [1, 2, 3, 4, 5, 6])
  assert.equal((await new PackStorage({ root, version: '1' }).get('s', 'k')).toString(), '5')
})

test('versions are isolated', async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: 'webpack-5.1' })
  a.set('s', 'k', Buffer.from('a'))
  await a.save()
  const b = new PackStorage({ root, version: 'webpack-5.2' })
  assert.deepEqual(await b.load('s'), [])
  b.set('s', 'k', Buffer.from('b'))
  await b.save()
  assert.equal((await new PackStorage({ root, version: 'webpack-5.1' }).get('s', 'k')).toString(), 'a')
  const weird = new PackStorage({ root, version: '../../etc/passwd\0/..' })
  weird.set('s', 'k', Buffer.from('w'))
  await weird.save()
  for (const entry of fs.readdirSync(root)) assert.match(entry, /^pc3-[0-9a-f]{32}$/)
})

test('reset drops one scope with its unsaved updates, or everything', async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: '1' })
  a.set('a', 'k', Buffer.from('1'))
  a.set('b', 'k', Buffer.from('1'))
  await a.save()
  a.set('a', 'unsaved', Buffer.from('1'))
  await a.reset('a')
  assert.deepEqual(await a.load('a'), [])
  assert.deepEqual(await a.scopes(), ['b'])
  await a.save()
  assert.deepEqual(await new PackStorage({ root, version: '1' }).load('a'), [])
  await a.reset()
  assert.deepEqual(await a.scopes(), [])
  assert.deepEqual(packFiles(root), [])
})

test('loadMany returns scopes in the order asked', async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: '1' })
  const names = ['zeta', 'alpha', 'mid', 'empty-never-set']
  names.slice(0, 3).forEach((s, i) => {
    for (let j = 0; j <= i; j++) a.set(s, `${s}-${j}`, Buffer.from(s))
  })
  await a.save()
  const b = new PackStorage({ root, version: '1' })
  const all = await b.loadMany(names)
  assert.deepEqual(all.map((p) => p.length), [1, 2, 3, 0])
  assert.deepEqual(all.map((p) => (p[0] ? p[0][1].toString() : null)), ['zeta', 'alpha', 'mid', null])
  assert.deepEqual(await b.scopes(), ['alpha', 'mid', 'zeta'])
})

test('get finds keys across many packs', async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: '1', packSize: 16 * 1024 })
  for (let i = 0; i < 3000; i++) a.set('s', `key-${i}`, Buffer.from(`value-${i}-`.repeat(10)))
  await a.save()
  assert.ok(packFiles(root).length > 10)
  const b = new PackStorage({ root, version: '1' })
  for (const i of [0, 1, 777, 2999]) assert.equal((await b.get('s', `key-${i}`)).toString(), `value-${i}-`.repeat(10))
  assert.equal(await b.get('s', 'key-3000'), null)
  assert.equal(await b.get('other', 'key-1'), null)
})

test('invalid scope names are rejected with PACKCACHE_INVALID_ARG', async (t) => {
  const a = new PackStorage({ root: tempRoot(t), version: '1' })
  for (const bad of ['', '.', '..', 'a/b', 'a\\b', '../up', 'nul\0', 'x'.repeat(129), 'späce', 'a b']) {
    assert.throws(() => a.set(bad, 'k', Buffer.from('v')), { code: 'PACKCACHE_INVALID_ARG' }, JSON.stringify(bad))
    await assert.rejects(a.load(bad), { code: 'PACKCACHE_INVALID_ARG' })
  }
  a.set('x'.repeat(128), 'k', Buffer.from('v'))
})

test('wrong argument types throw TypeError', async (t) => {
  const a = new PackStorage({ root: tempRoot(t), version: '1' })
  assert.throws(() => a.set(1, 'k', Buffer.from('v')), TypeError)
  assert.throws(() => a.set('s', 1, Buffer.from('v')), TypeError)
  assert.throws(() => a.set('s', 'k', 'not a buffer'), TypeError)
  assert.throws(() => a.set('s', 'k'), TypeError)
  assert.throws(() => a.set('s', 'k', new Uint16Array(2)), TypeError)
  assert.throws(() => a.remove('s', {}), TypeError)
  assert.throws(() => a.load(null), TypeError)
  assert.throws(() => a.loadMany('s'), TypeError)
  assert.throws(() => a.loadMany(['s', 2]), TypeError)
  assert.throws(() => a.get('s', null), TypeError)
  assert.throws(() => new PackStorage(), TypeError)
  assert.throws(() => new PackStorage({ root: 1, version: '1' }), TypeError)
  assert.throws(() => new PackStorage({ root: '/tmp', version: '1', fsync: 'yes' }), TypeError)
  assert.throws(() => hash(42), TypeError)
  assert.throws(() => new PackStorage({ root: '/tmp', version: '1', compression: 'gzip' }), { code: 'PACKCACHE_INVALID_ARG' })
})

test('set called on anything but a PackStorage throws and stores nothing', async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: '1' })
  const { set } = PackStorage.prototype
  for (const receiver of [{}, new Date(), Object.create(PackStorage.prototype), undefined, null]) {
    assert.throws(() => set.call(receiver, 's', 'k', Buffer.from('v')), { name: 'TypeError', code: 'PACKCACHE_INVALID_ARG' })
  }
  set.call(a, 's', 'k', Buffer.from('v'))
  assert.equal(set.name, 'set')
  assert.deepEqual((await a.load('s')).map(([k, v]) => [k.toString(), v.toString()]), [['k', 'v']])
  await a.save()
  assert.deepEqual((await new PackStorage({ root, version: '1' }).load('s')).map(([k, v]) => [k.toString(), v.toString()]), [['k', 'v']])
})

test("an instance's own set writes to that instance whatever it is called on, and is not enumerable", async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: '1' })
  const b = new PackStorage({ root, version: '2' })
  assert.deepEqual(Object.keys(a), [])
  assert.notEqual(a.set, b.set)
  const { set } = a
  set('s', 'detached', Buffer.from('1'))
  a.set.call(b, 's', 'called-on-b', Buffer.from('2'))
  a.set.call(undefined, 's', 'called-on-nothing', Buffer.from('3'))
  assert.throws(() => set('s', 'k', 'not a buffer'), { name: 'TypeError', code: 'PACKCACHE_INVALID_ARG' })
  assert.throws(() => set(7, 'k', Buffer.from('v')), { name: 'TypeError', code: 'PACKCACHE_INVALID_ARG' })
  const pairs = (s) => s.load('s').then((p) => p.map(([k, v]) => [k.toString(), v.toString()]).sort())
  const want = [['called-on-b', '2'], ['called-on-nothing', '3'], ['detached', '1']]
  assert.deepEqual(await pairs(a), want)
  assert.deepEqual(await pairs(b), [])
  await a.save()
  assert.deepEqual(await pairs(new PackStorage({ root, version: '1', readonly: true })), want)
})

test("a subclass's set override is called, and a subclass without one gets the bound set", async (t) => {
  const root = tempRoot(t)
  class Counting extends PackStorage {
    set(scope, key, value) {
      this.calls = (this.calls ?? 0) + 1
      return super.set(scope, key, value.toString().toUpperCase() === 'V' ? Buffer.from('upper') : value)
    }
  }
  class Plain extends PackStorage {}
  const c = new Counting({ root, version: '1' })
  c.set('s', 'k', Buffer.from('v'))
  c.set('s', 'k2', Buffer.from('w'))
  assert.equal(c.calls, 2)
  assert.deepEqual(
    (await c.load('s')).map(([k, v]) => [k.toString(), v.toString()]).sort(),
    [['k', 'upper'], ['k2', 'w']],
  )
  const p = new Plain({ root, version: '2' })
  assert.ok(Object.hasOwn(p, 'set'))
  const { set } = p
  set('s', 'k', Buffer.from('plain'))
  assert.equal((await p.get('s', 'k')).toString(), 'plain')
  // Whatever a subclass puts in place of `set`, construction works and keeps it.
  for (const replacement of [undefined, null, 5, 'set']) {
    class Odd extends PackStorage {}
    Odd.prototype.set = replacement
    const o = new Odd({ root, version: '3' })
    assert.equal(o.set, replacement)
    assert.equal(Object.hasOwn(o, 'set'), false)
  }
})

test("an instance's set keeps its store alive after the instance itself is collected", (t) => {
  const root = tempRoot(t)
  const fixture = path.join(import.meta.dirname, 'fixtures', 'detached-set.mjs')
  const child = spawnSync(process.execPath, ['--expose-gc', fixture, root], { encoding: 'utf8', timeout: 60_000 })
  assert.equal(child.status, 0, `${child.stdout}${child.stderr}`)
  assert.match(child.stdout, /sets after collection: ok/)
})

test('a readonly instance writes nothing and save rejects with PACKCACHE_READONLY', async (t) => {
  const parent = tempRoot(t)
  const root = path.join(parent, 'not-created')
  const r = new PackStorage({ root, version: '1', readonly: true })
  r.set('s', 'k', Buffer.from('v'))
  assert.equal((await r.load('s')).length, 1)
  await assert.rejects(r.save(), { code: 'PACKCACHE_READONLY' })
  await assert.rejects(r.reset(), { code: 'PACKCACHE_READONLY' })
  assert.equal(fs.existsSync(root), false)

  const w = new PackStorage({ root, version: '1' })
  w.set('s', 'k', Buffer.from('v'))
  await w.save()
  const before = listTree(root)
  const r2 = new PackStorage({ root, version: '1', readonly: true })
  assert.equal((await r2.get('s', 'k')).toString(), 'v')
  assert.deepEqual(listTree(root), before)
})

test('a flipped byte in a pack gives PACKCACHE_CORRUPT for that scope only', async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: '1' })
  a.set('victim', 'k', Buffer.from('precious'.repeat(100)))
  a.set('bystander', 'k', Buffer.from('fine'))
  await a.save()
  await a.close()
  const packs = packFiles(root)
  assert.equal(packs.length, 2)
  let victimPack
  for (const p of packs) if (fs.readFileSync(p).includes(Buffer.from('victim'))) victimPack = p
  const bytes = fs.readFileSync(victimPack)
  bytes[bytes.length - 40] ^= 0xff
  fs.writeFileSync(victimPack, bytes)

  const b = new PackStorage({ root, version: '1' })
  await assert.rejects(b.load('victim'), { code: 'PACKCACHE_CORRUPT' })
  await assert.rejects(b.get('victim', 'k'), { code: 'PACKCACHE_CORRUPT' })
  assert.equal((await b.get('bystander', 'k')).toString(), 'fine')
  assert.equal((await b.load('bystander')).length, 1)
  b.set('victim', 'k2', Buffer.from('new'))
  await b.save()
  const c = new PackStorage({ root, version: '1' })
  assert.deepEqual([...asMap(await c.load('victim')).keys()], [Buffer.from('k2').toString('hex')])
})

test('hash is blake3 as 64 lowercase hex chars', () => {
  assert.equal(hash(''), 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262')
  assert.equal(hash('abc'), hash(Buffer.from('abc')))
  assert.equal(hash(new Uint8Array([97, 98, 99])), '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85')
})

test('a closed instance rejects further calls with PACKCACHE_CLOSED', async (t) => {
  const a = new PackStorage({ root: tempRoot(t), version: '1' })
  a.set('s', 'k', Buffer.from('v'))
  await a.close()
  await assert.rejects(a.load('s'), { code: 'PACKCACHE_CLOSED' })
  await assert.rejects(a.save(), { code: 'PACKCACHE_CLOSED' })
  assert.throws(() => a.set('s', 'k', Buffer.from('v')), { code: 'PACKCACHE_CLOSED' })
})

for (const compression of ['none', 'zstd', 'lz4']) {
  test(`writing into loaded Buffers (compression ${compression}) changes nothing stored`, async (t) => {
    const root = tempRoot(t)
    const a = new PackStorage({ root, version: '1', compression })
    const original = new Map()
    for (let i = 0; i < 50; i++) {
      const v = crypto.randomBytes(100 + i * 40)
      original.set(`k${i}`, v)
      a.set('s', `k${i}`, v)
    }
    await a.save()
    const b = new PackStorage({ root, version: '1' })
    const first = await b.load('s')
    for (const [k, v] of first) {
      assert.equal(v.toString('hex'), original.get(k.toString()).toString('hex'))
      v.fill(0xee)
      k.fill(0xee)
    }
    const again = await new PackStorage({ root, version: '1' }).load('s')
    for (const [k, v] of again) assert.equal(v.toString('hex'), original.get(k.toString()).toString('hex'))
    const other = await b.load('s')
    for (const [k, v] of other) assert.equal(v.toString('hex'), original.get(k.toString()).toString('hex'))
  })
}

test('loads racing with saves that delete packs see one whole generation', async (t) => {
  const root = tempRoot(t)
  const writer = new PackStorage({ root, version: '1', packSize: 4096 })
  const reader = new PackStorage({ root, version: '1' })
  const keys = 400
  const write = (g) => {
    for (let i = 0; i < keys; i++) writer.set('s', `k${i}`, Buffer.from(`${g}:`.padEnd(64, 'x')))
    return writer.save()
  }
  await write(0)
  let loads = 0
  const saving = (async () => {
    for (let g = 1; g <= 25; g++) await write(g)
  })()
  let done = false
  saving.then(() => (done = true))
  while (!done) {
    const pairs = await reader.load('s')
    const gens = new Set(pairs.map(([, v]) => v.toString().split(':')[0]))
    assert.equal(pairs.length, keys)
    assert.equal(gens.size, 1, `a load mixed generations ${[...gens]}`)
    loads++
  }
  await saving
  assert.ok(loads > 0)
})

test('loadMany and loadColumns reject with PACKCACHE_CORRUPT naming the damaged scope', async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: '1' })
  a.set('fine', 'k', Buffer.from('ok'))
  a.set('damaged', 'k', Buffer.from('x'.repeat(2000)))
  await a.save()
  damagePackHolding(root, 'damaged')
  const b = new PackStorage({ root, version: '1' })
  await assert.rejects(b.loadMany(['fine', 'damaged']), (e) => e.code === 'PACKCACHE_CORRUPT' && /"damaged"/.test(e.message))
  assert.deepEqual((await b.loadMany(['fine'])).map((p) => p.length), [1])
  await assert.rejects(b.loadColumns(['fine', 'damaged']), (e) => e.code === 'PACKCACHE_CORRUPT' && /"damaged"/.test(e.message))
  assert.deepEqual((await b.loadColumns(['fine']))[0].map((part) => part.offsets.length), [4])
})

test('close while loads and saves are in flight settles every promise', async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: '1' })
  for (let i = 0; i < 3000; i++) a.set('s', `k${i}`, crypto.randomBytes(300))
  await a.save()
  a.set('s', 'late', Buffer.from('x'))
  const pending = [a.load('s'), a.save(), a.get('s', 'k1'), a.loadMany(['s', 's'])]
  const closing = a.close()
  const results = await Promise.allSettled(pending)
  await closing
  for (const r of results) {
    if (r.status === 'rejected') assert.equal(r.reason.code, 'PACKCACHE_CLOSED', String(r.reason))
  }
  assert.equal(results[1].status, 'fulfilled', 'a save queued before close() completes')
  assert.equal((await new PackStorage({ root, version: '1' }).get('s', 'late')).toString(), 'x')
})

test('set copies: changing the Buffer afterwards changes nothing stored', async (t) => {
  const root = tempRoot(t)
  const s = new PackStorage({ root, version: '1' })
  const value = Buffer.from('original')
  s.set('m', 'k', value)
  value.fill(0)
  assert.equal((await s.get('m', 'k')).toString(), 'original')
  await s.save()
  await s.close()
  const r = new PackStorage({ root, version: '1' })
  assert.equal((await r.get('m', 'k')).toString(), 'original')
})

test('unsaved values read back the same before and after their chunk is encoded', async (t) => {
  const root = tempRoot(t)
  const s = new PackStorage({ root, version: '1', packSize: 4096 })
  const expect = new Map()
  const put = (i, round) => {
    const v = crypto.createHash('sha256').update(`${i}/${round}`).digest().toString('hex').repeat(1 + (i % 9))
    s.set('m', `key-${i}`, Buffer.from(v))
    expect.set(`key-${i}`, v)
  }
  for (let i = 0; i < 600; i++) put(i, 0)
  await new Promise((r) => setTimeout(r, 50)) // sealed chunks get encoded meanwhile
  for (let i = 0; i < 600; i += 7) put(i, 1)
  for (let i = 3; i < 600; i += 11) {
    s.remove('m', `key-${i}`)
    expect.delete(`key-${i}`)
  }
  const check = async (store, when) => {
    const loaded = new Map((await store.load('m')).map(([k, v]) => [k.toString(), v.toString()]))
    assert.deepEqual(loaded, expect, when)
    for (const i of [0, 3, 7, 14, 599]) {
      const got = await store.get('m', `key-${i}`)
      assert.equal(got?.toString() ?? null, expect.get(`key-${i}`) ?? null, `${when}: get key-${i}`)
    }
  }
  await check(s, 'before save')
  const stats = await s.save()
  assert.ok(stats.packsWritten > 10, `many packs: ${stats.packsWritten}`)
  await check(s, 'after save')
  await s.close()
  await check(new PackStorage({ root, version: '1', packSize: 4096 }), 'reopened')
})

test('close without a save removes the stage files of unsaved sets', async (t) => {
  const root = tempRoot(t)
  const s = new PackStorage({ root, version: '1', packSize: 64 * 1024 })
  for (let i = 0; i < 200; i++) s.set('build', `m${i}`, Buffer.alloc(8192, i))
  const dir = () => path.join(root, fs.readdirSync(root)[0])
  const stageFiles = () => (fs.existsSync(root) && fs.readdirSync(root).length ? fs.readdirSync(dir()).filter((f) => f.startsWith('stage-')) : [])
  const waitFor = async (ok) => {
    for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10))
    return ok()
  }
  assert.ok(await waitFor(() => stageFiles().some((f) => f.endsWith('.pack'))), 'sets were staged to files')
  await s.close()
  // Chunks still queued for the background are dropped once it reaches them.
  assert.ok(await waitFor(() => stageFiles().length === 0), `left: ${stageFiles()}`)
  const again = new PackStorage({ root, version: '1' })
  assert.deepEqual(await again.load('build'), [])
  await again.close()
})

test('getMany returns each key\'s value in the order asked, null where absent, unsaved updates first', async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: '1', packSize: 16 * 1024 })
  for (let i = 0; i < 200; i++) a.set('s', `k${i}`, Buffer.from(`value ${i} `.repeat(1 + (i % 30))))
  await a.save()
  a.set('s', 'k5', Buffer.from('unsaved 5'))
  a.remove('s', 'k6')
  const keys = ['k5', 'k6', 'missing', Buffer.from('k7'), new Uint8Array(Buffer.from('k199')), 'k7', 'k0']
  const got = await a.getMany('s', keys)
  assert.equal(got.length, keys.length)
  assert.equal(got[0].toString(), 'unsaved 5')
  assert.equal(got[1], null)
  assert.equal(got[2], null)
  assert.equal(got[3].toString(), 'value 7 '.repeat(8))
  assert.equal(got[4].toString(), 'value 199 '.repeat(20))
  assert.deepEqual(got[5], got[3])
  for (const [i, key] of keys.entries()) assert.deepEqual(got[i], await a.get('s', key))
  const fresh = new PackStorage({ root, version: '1' })
  const all = await fresh.getMany('s', Array.from({ length: 200 }, (_, i) => `k${i}`))
  all.forEach((v, i) => assert.equal(v.toString(), `value ${i} `.repeat(1 + (i % 30))))
  assert.deepEqual(await fresh.getMany('unknown', ['k1']), [null])
  assert.deepEqual(await fresh.getMany('s', []), [])
  assert.throws(() => fresh.getMany('s', 'k1'), { name: 'TypeError', code: 'PACKCACHE_INVALID_ARG' })
  assert.throws(() => fresh.getMany('s', [1]), { name: 'TypeError', code: 'PACKCACHE_INVALID_ARG', message: /keys\[0\]/ })
  await assert.rejects(fresh.getMany('bad/scope', ['k']), { code: 'PACKCACHE_INVALID_ARG' })
})
