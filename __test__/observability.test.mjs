import test from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { PackStorage, tempRoot } from './helpers.mjs'

test('loadStats reports what the last load read and handed out', async (t) => {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: '1', packSize: 32 * 1024 })
  let raw = 0
  for (const scope of ['a', 'b']) {
    for (let i = 0; i < 100; i++) {
      const key = `${scope}/${i}`
      const value = Buffer.from(`value ${i};`.repeat(i + 1))
      a.set(scope, key, value)
      raw += key.length + value.length
    }
  }
  await a.save()
  a.set('a', 'unsaved', Buffer.from('1234'))
  raw += 'unsaved'.length + 4
  assert.equal(a.loadStats(), null)
  const loaded = await a.loadMany(['a', 'b'])
  const stats = a.loadStats()
  assert.equal(stats.scopes, 2)
  assert.equal(stats.items, loaded[0].length + loaded[1].length)
  assert.equal(stats.items, 201)
  assert.equal(stats.rawBytes, raw)
  assert.ok(stats.packs >= 2, `${stats.packs} packs`)
  assert.ok(stats.readBytes > 0 && stats.readBytes < raw, `${stats.readBytes} bytes read (compressed)`)
  assert.ok(stats.ms >= 0 && stats.threads >= 1)
  await a.loadColumns(['b'])
  assert.equal(a.loadStats().scopes, 1)
  assert.equal(a.loadStats().items, 100)
})

test('DEBUG=packcache logs opens, saves and loads to stderr; without it packcache is silent', (t) => {
  const root = tempRoot(t)
  const helpers = fileURLToPath(new URL('./helpers.mjs', import.meta.url))
  const script = `import { PackStorage } from ${JSON.stringify(helpers)}
    const s = new PackStorage({ root: ${JSON.stringify(root)}, version: 'v' })
    s.set('s', 'k', Buffer.alloc(1000))
    await s.save()
    await s.load('s')`
  const run = (env) => spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, ...env } })
  const logged = run({ DEBUG: 'other,packcache' })
  assert.equal(logged.status, 0, logged.stderr)
  assert.match(logged.stderr, /^packcache: open .*pc3-[0-9a-f]{32} \("v", lz4\)$/m)
  assert.match(logged.stderr, /^packcache: save: generation 1, 1 packs written \(.* MiB, 1 items\), 0 packs removed, 0 versions expired, [\d.]+ ms$/m)
  assert.match(logged.stderr, /^packcache: load 1 scopes: 1 items, 0\.0 MiB raw, 1 packs, 0\.0 MiB read, [\d.]+ ms$/m)
  const quiet = run({ DEBUG: '' })
  assert.equal(quiet.status, 0, quiet.stderr)
  assert.equal(quiet.stderr, '')
})
