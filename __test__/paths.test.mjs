import test from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { PackStorage, tempRoot, listTree } from './helpers.mjs'

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
