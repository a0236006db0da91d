import test from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { PackStorage, tempRoot, asMap } from './helpers.mjs'

/** The pairs of one scope's parts, as `loadMany` would return them. */
function pairsOf(parts) {
  const pairs = []
  for (const { buffer, offsets } of parts) {
    assert.ok(Buffer.isBuffer(buffer))
    assert.ok(offsets instanceof Uint32Array || offsets instanceof Float64Array)
    assert.equal(offsets.length % 4, 0)
    for (let i = 0; i < offsets.length; i += 4) {
      pairs.push([buffer.subarray(offsets[i], offsets[i + 1]), buffer.subarray(offsets[i + 2], offsets[i + 3])])
    }
  }
  return pairs
}

for (const compression of ['lz4', 'zstd', 'none']) {
  test(`loadColumns (${compression}) holds exactly the pairs loadMany returns, unsaved updates included`, async (t) => {
    const root = tempRoot(t)
    const a = new PackStorage({ root, version: '1', compression, packSize: 64 * 1024 })
    for (let i = 0; i < 300; i++) a.set('modules', `src/m${i}.js`, Buffer.from(`export const m${i} = ${i};\n`.repeat(i % 40)))
    a.set('modules', '', Buffer.from('empty key'))
    a.set('modules', Buffer.from([0, 255, 7]), crypto.randomBytes(1 << 20))
    for (let i = 0; i < 50; i++) a.set('hashes', `h${i}`, crypto.randomBytes(16))
    await a.save()
    await a.close()

    const b = new PackStorage({ root, version: '1', compression, packSize: 64 * 1024 })
    b.set('modules', 'src/m3.js', Buffer.from('changed, not saved'))
    b.set('modules', 'src/new.js', Buffer.from('new, not saved'))
    b.remove('hashes', 'h7')
    const names = ['modules', 'hashes', 'never-written']
    const columns = await b.loadColumns(names)
    const pairs = await b.loadMany(names)
    assert.equal(columns.length, 3)
    assert.ok(columns[0].length > 2, `modules comes in several parts (${columns[0].length})`)
    assert.deepEqual(columns[2], [])
    for (let s = 0; s < names.length; s++) {
      const got = pairsOf(columns[s])
      assert.equal(got.length, pairs[s].length, names[s])
      assert.deepEqual(asMap(got), asMap(pairs[s]), names[s])
    }
    const modules = asMap(pairsOf(columns[0]))
    assert.equal(modules.get(Buffer.from('src/m3.js').toString('hex')), Buffer.from('changed, not saved').toString('hex'))
    assert.equal(modules.size, 303)
    assert.equal(asMap(pairsOf(columns[1])).has(Buffer.from('h7').toString('hex')), false)
  })
}

test('loadColumns rejects bad arguments like loadMany', async (t) => {
  const a = new PackStorage({ root: tempRoot(t), version: '1' })
  assert.throws(() => a.loadColumns('modules'), (e) => e instanceof TypeError && e.code === 'PACKCACHE_INVALID_ARG')
  assert.throws(() => a.loadColumns([1]), (e) => e instanceof TypeError && e.code === 'PACKCACHE_INVALID_ARG')
  await assert.rejects(a.loadColumns(['../up']), (e) => e.code === 'PACKCACHE_INVALID_ARG')
})
