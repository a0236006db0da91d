import test from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { PackStorage, hash, tempRoot } from './helpers.mjs'

const LONE = ['x\uD800', 'x\uDC00', 'x\uDBFF', '\uDC00\uD800', 'a\uD83Db']

test('strings with lone surrogates are rejected as keys, scopes, versions and hash input', async (t) => {
  const root = tempRoot(t)
  const s = new PackStorage({ root, version: '1' })
  for (const bad of LONE) {
    const invalid = { name: 'TypeError', code: 'PACKCACHE_INVALID_ARG', message: /lone surrogate/ }
    assert.throws(() => s.set('s', bad, Buffer.from('v')), invalid)
    assert.throws(() => s.remove('s', bad), invalid)
    await assert.rejects(async () => s.get('s', bad), invalid)
    assert.throws(() => s.set(bad, 'k', Buffer.from('v')), invalid)
    await assert.rejects(async () => s.load(bad), invalid)
    await assert.rejects(async () => s.loadMany(['ok', bad]), invalid)
    assert.throws(() => hash(bad), invalid)
    assert.throws(() => new PackStorage({ root, version: bad }), invalid)
  }
})

test('distinct well-formed strings stay distinct keys, U+FFFD included', async (t) => {
  const root = tempRoot(t)
  const s = new PackStorage({ root, version: '1' })
  const keys = ['x\uFFFD', 'x\uD83D\uDE00', 'x', '\uFFFD'.repeat(300)]
  keys.forEach((k, i) => s.set('s', k, Buffer.from(String(i))))
  await s.save()
  const r = new PackStorage({ root, version: '1' })
  for (const [i, k] of keys.entries()) assert.equal((await r.get('s', k)).toString(), String(i))
  assert.equal((await r.load('s')).length, keys.length)
  assert.notEqual(hash('\uFFFD'), hash('\uFFFD\uFFFD'))
})

test('an unknown option key is rejected by name', (t) => {
  const root = tempRoot(t)
  assert.throws(() => new PackStorage({ root, version: '1', compresion: 'none' }), {
    code: 'PACKCACHE_INVALID_ARG',
    message: /unknown option "compresion"/,
  })
  assert.throws(() => new PackStorage({ root, version: '1', expires: undefined }), { code: 'PACKCACHE_INVALID_ARG' })
  // Inherited or symbol keys are not options, and not typos.
  const opts = Object.assign(Object.create({ inherited: 1 }), { root, version: '1', [Symbol('tag')]: 1 })
  assert.ok(new PackStorage(opts))
})

test('an exception thrown by an options getter reaches the caller', (t) => {
  const root = tempRoot(t)
  const boom = new Error('getter boom')
  const opts = { version: '1' }
  Object.defineProperty(opts, 'root', { enumerable: true, get: () => { throw boom } })
  assert.throws(() => new PackStorage(opts), (e) => e === boom)
})

test('compressionLevel errors give the accepted range', (t) => {
  const root = tempRoot(t)
  for (const level of [-131073, 23, 1e12, -1e12]) {
    assert.throws(() => new PackStorage({ root, version: '1', compressionLevel: level }), {
      code: 'PACKCACHE_INVALID_ARG',
      message: /outside -131072\.\.=22/,
    })
  }
  assert.throws(() => new PackStorage({ root, version: '1', compressionLevel: 1.5 }), { message: /integer/ })
  assert.ok(new PackStorage({ root, version: '1', compressionLevel: -131072 }))
})

test('methods called on a foreign receiver throw a coded TypeError', async (t) => {
  const root = tempRoot(t)
  const s = new PackStorage({ root, version: '1' })
  const proto = PackStorage.prototype
  for (const name of ['load', 'loadMany', 'loadColumns', 'get', 'getMany', 'remove', 'save', 'reset', 'scopes', 'close', 'loadStats', 'set']) {
    for (const receiver of [{}, Object.create(proto), undefined, 42]) {
      assert.throws(() => proto[name].call(receiver, 's', 'k', Buffer.alloc(1)), {
        name: 'TypeError',
        code: 'PACKCACHE_INVALID_ARG',
        message: new RegExp(`${name} must be called on a PackStorage`),
      })
    }
  }
  // The checked methods still work on real instances, with their arguments.
  s.set('s', 'k', Buffer.from('v'))
  assert.equal((await proto.get.call(s, 's', 'k')).toString(), 'v')
  await proto.save.call(s)
  assert.deepEqual(await s.scopes(), ['s'])
})

test('the options the parser accepts are exactly the fields of the TS interface', (t) => {
  const dts = fs.readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8')
  const body = /export interface PackStorageOptions \{([\s\S]*?)\n\}/.exec(dts)[1]
  const declared = [...body.matchAll(/^ {2}(\w+)\??:/gm)].map((m) => m[1])
  let accepted
  try {
    new PackStorage({ root: tempRoot(t), version: '1', notAnOption: 1 })
  } catch (e) {
    accepted = /options are ([\w, ]+)\)/.exec(e.message)[1].split(', ')
  }
  assert.deepEqual(accepted, declared)
  assert.equal(declared.length, 8)
})

test('compressionLevel alone selects zstd; beside lz4 or none it is rejected', async (t) => {
  const root = tempRoot(t)
  for (const compression of ['lz4', 'none']) {
    assert.throws(() => new PackStorage({ root, version: '1', compression, compressionLevel: 3 }), {
      code: 'PACKCACHE_INVALID_ARG',
      message: /applies to 'zstd' only/,
    })
  }
  assert.throws(() => new PackStorage({ root, version: '1', compression: 'lz5' }), { message: /'zstd', 'lz4' or 'none'/ })
  // Stores of each codec share a version directory; every pack stays readable.
  const value = Buffer.from('export default 42;\n'.repeat(500))
  for (const [i, opts] of [{ compressionLevel: 19 }, { compression: 'lz4' }, {}, { compression: 'none' }].entries()) {
    const s = new PackStorage({ root, version: '1', ...opts })
    s.set('s', `k${i}`, value)
    await s.save()
  }
  const pairs = await new PackStorage({ root, version: '1' }).load('s')
  assert.deepEqual(pairs.map(([k]) => k.toString()).sort(), ['k0', 'k1', 'k2', 'k3'])
  for (const [, v] of pairs) assert.ok(v.equals(value))
})
