import test from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import { fileURLToPath } from 'node:url'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { PackStorage, tempRoot } from './helpers.mjs'
import { killTrial, spawnChild } from './fixtures/kill-trial.mjs'

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures')

test('kill -9 at random moments leaves the last acknowledged generation or the next', async (t) => {
  const root = tempRoot(t)
  for (let trial = 0; trial < 6; trial++) {
    await killTrial(root, 150 + Math.floor(Math.random() * 250))
    // The killed saver's lock is gone: a new process saves right away.
    const s = new PackStorage({ root, version: 'kill' })
    s.set('meta', 'probe', Buffer.from('x'))
    const stats = await s.save()
    assert.ok(stats.generation > 0)
    s.remove('meta', 'probe')
    await s.save()
    await s.close()
  }
})

async function contend(t, n, rounds, perRound) {
  const root = tempRoot(t)
  const names = Array.from({ length: n }, (_, i) => `p${i}`)
  const children = names.map((who) => spawnChild('contender.mjs', [root, who, String(rounds), String(perRound)]))
  const exits = await Promise.all(children.map((c) => c.done))
  exits.forEach((e, i) => assert.equal(e.code, 0, children[i].err))
  const s = new PackStorage({ root, version: 'contend' })
  const m = new Map((await s.load('data')).map(([k, v]) => [k.toString(), v.toString()]))
  for (const who of names) {
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < perRound; i++) assert.equal(m.get(`${who}/${r}/${i}`), `${who}:${r}:${i}`)
    }
  }
  // Generations are the commit order: the shared key holds the last committed write.
  const commits = children.flatMap((c) => [...c.out.matchAll(/gen (\d+) shared (\S+)/g)].map((x) => [Number(x[1]), x[2]]))
  assert.equal(commits.length, n * rounds)
  assert.equal(new Set(commits.map(([g]) => g)).size, commits.length, 'every save got its own generation')
  commits.sort((a, b) => a[0] - b[0])
  assert.equal(m.get('shared'), commits[commits.length - 1][1])
  assert.equal(m.size, n * rounds * perRound + 1)
}

test('two processes saving disjoint and overlapping keys: no lost update, last writer wins', (t) => contend(t, 2, 12, 30))
test('four processes saving disjoint and overlapping keys: no lost update, last writer wins', (t) => contend(t, 4, 8, 30))

test('the addon works in two worker threads at once', async (t) => {
  const root = tempRoot(t)
  const run = (name) =>
    new Promise((resolve, reject) => {
      const w = new Worker(path.join(fixtures, 'worker.mjs'), { workerData: { root, name, count: 500 } })
      w.once('message', resolve)
      w.once('error', reject)
    })
  const results = await Promise.all([run('w1'), run('w2')])
  assert.deepEqual(results, [
    { name: 'w1', loaded: 500, sample: 'w1-7' },
    { name: 'w2', loaded: 500, sample: 'w2-7' },
  ])
  const s = new PackStorage({ root, version: 'workers' })
  assert.deepEqual((await s.loadMany(['w1', 'w2'])).map((p) => p.length), [500, 500])
})

test('a full disk makes save reject with PACKCACHE_IO and keeps the previous generation', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'packcache-full-'))
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir]).status === 0
  t.after(() => {
    if (mounted) spawnSync('umount', ['-l', dir])
    fs.rmSync(dir, { recursive: true, force: true })
  })
  if (!mounted) return t.skip('cannot mount a small tmpfs here (the Rust fault-injection tests cover StorageFull)')
  const root = path.join(dir, 'cache')
  const s = new PackStorage({ root, version: '1', compression: 'none' })
  s.set('s', 'small', Buffer.from('kept'))
  await s.save()
  s.set('s', 'huge', Buffer.alloc(4 * 1024 * 1024, 1))
  await assert.rejects(s.save(), { code: 'PACKCACHE_IO' })
  const again = new PackStorage({ root, version: '1' })
  assert.equal((await again.get('s', 'small')).toString(), 'kept')
  assert.equal(await again.get('s', 'huge'), null)
  // Space freed: the failed save's updates are still pending and go through.
  s.remove('s', 'huge')
  s.set('s', 'after', Buffer.from('ok'))
  await s.save()
  assert.equal((await again.get('s', 'after')).toString(), 'ok')
  assert.deepEqual(fs.readdirSync(path.join(root, fs.readdirSync(root)[0])).filter((f) => f.includes('.tmp-')), [])
  await s.close()
  await again.close()
})

test('a lock held by a process that is then killed never blocks the next save', async (t) => {
  const root = tempRoot(t)
  const s = new PackStorage({ root, version: '1' })
  s.set('s', 'k', Buffer.from('v1'))
  await s.save()
  const lockFile = path.join(root, fs.readdirSync(root)[0], 'LOCK')
  // flock(1) takes the same kind of lock (flock(2)) as the addon.
  const holder = spawn('flock', [lockFile, '-c', 'echo held; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] })
  if (!(await new Promise((resolve) => {
    holder.once('error', () => resolve(false))
    holder.stdout.once('data', () => resolve(true))
  }))) return t.skip('flock(1) is not available')
  let settled = false
  s.set('s', 'k', Buffer.from('v2'))
  const saving = s.save().finally(() => (settled = true))
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(settled, false, 'the save waits for the lock holder')
  holder.kill('SIGKILL')
  const stats = await saving
  assert.equal(stats.generation, 2)
  assert.equal((await new PackStorage({ root, version: '1' }).get('s', 'k')).toString(), 'v2')
})

test('an unreadable root is a clear PACKCACHE_IO error (as an unprivileged user)', async (t) => {
  const parent = tempRoot(t)
  fs.chmodSync(parent, 0o755)
  const root = path.join(parent, 'locked')
  fs.mkdirSync(root, { mode: 0o000 })
  const script = `
    const { PackStorage } = require(${JSON.stringify(path.resolve(fixtures, '../../index.js'))})
    const s = new PackStorage({ root: ${JSON.stringify(root)}, version: '1' })
    s.set('s', 'k', Buffer.from('v'))
    s.save().then(() => console.log('saved'), (e) => console.log(e.code))
  `
  const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}
  const r = spawnSync(process.execPath, ['-e', script], { ...asUser, encoding: 'utf8' })
  assert.equal(r.stdout.trim(), 'PACKCACHE_IO', r.stderr)
  assert.deepEqual(fs.readdirSync(root), [])
})

/** Starts a stager child and waits until it reports its stage files. */
async function stager(root, who) {
  const child = spawnChild('stager.mjs', [root, who], 'pipe')
  while (!/staged .*\n/.test(child.out)) {
    const exited = await Promise.race([child.done, new Promise((r) => setTimeout(() => r(null), 20))])
    assert.equal(exited, null, `stager exited early: ${child.err}`)
  }
  const files = child.out.match(/staged (.*)\n/)[1].split(' ').filter(Boolean)
  assert.ok(files.length > 0, 'the child staged no file')
  return { child, files }
}

const stageFilesIn = (root) =>
  fs.readdirSync(root).flatMap((d) => fs.readdirSync(path.join(root, d)).filter((f) => f.startsWith('stage-')))

test("a live process's stage files survive another process's save, and its own save commits them", async (t) => {
  const root = tempRoot(t)
  const { child, files } = await stager(root, 'a')
  const other = new PackStorage({ root, version: 'stage' })
  other.set('other', 'k', Buffer.from('v'))
  await other.save()
  const left = stageFilesIn(root)
  for (const f of files) assert.ok(left.includes(f), `${f} was deleted while its process lived`)
  child.stdin.write('save\n')
  assert.equal((await child.done).code, 0, child.err)
  assert.deepEqual(stageFilesIn(root), [], 'stage files outlived the process that committed them')
  const pairs = await other.load('build')
  assert.equal(pairs.length, 200)
  for (const [k, v] of pairs) assert.ok(v.equals(Buffer.alloc(8192, `${k.toString().replace('/', ':')};`)), `value of ${k}`)
  await other.close()
})

test("a killed process's stage files are removed by the next save, and its unsaved data never appears", async (t) => {
  const root = tempRoot(t)
  const { child, files } = await stager(root, 'k')
  child.kill('SIGKILL')
  await child.done
  assert.ok(stageFilesIn(root).some((f) => files.includes(f)), 'the killed process left its stage files')
  const s = new PackStorage({ root, version: 'stage' })
  s.set('other', 'k', Buffer.from('v'))
  await s.save()
  assert.deepEqual(stageFilesIn(root), [], 'stage files of a dead process survived a save')
  assert.deepEqual(await s.load('build'), [])
  assert.equal((await s.get('other', 'k')).toString(), 'v')
  await s.close()
})
