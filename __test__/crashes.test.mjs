// Probes that used to crash the process run in a child process, so that a
// regression fails its test instead of the whole suite.
import test from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { tempRoot } from './helpers.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))

function runFixture(name, args) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [path.join(here, 'fixtures', name), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.on('data', (d) => (out += d))
    p.stderr.on('data', (d) => (err += d))
    p.on('exit', (code, signal) => resolve({ code, signal, out, err }))
  })
}

function parsed(run) {
  assert.equal(run.signal, null, `child killed by ${run.signal}: ${run.err}`)
  assert.equal(run.code, 0, `child exited ${run.code}: ${run.err}`)
  return JSON.parse(run.out.trim().split('\n').pop())
}

test('a loadMany of more than 4 GiB (three 1.5 GiB scopes, zstd) returns every byte', async (t) => {
  const result = parsed(await runFixture('huge-load.mjs', [tempRoot(t), 'zstd', 'scopes']))
  assert.deepEqual(result, { loadMany: ['ok', 'ok', 'ok'], loadColumns: ['ok', 'ok', 'ok'] })
})

test("a load of more than 4 GiB in one scope ('none', served from the mappings) returns every byte", async (t) => {
  const result = parsed(await runFixture('huge-load.mjs', [tempRoot(t), 'none', 'one-scope']))
  assert.deepEqual(result, { load: ['ok', 'ok', 'ok'] })
})

test('worker threads terminated mid-load, -get and -save leave the process alive and the cache whole', async (t) => {
  const rounds = 40
  const result = parsed(await runFixture('terminate-workers.mjs', [tempRoot(t), String(rounds)]))
  assert.equal(result.terminated, rounds * 5)
  assert.equal(result.bad, 0)
  assert.ok(result.w === 0 || result.w === 50, `scope w holds ${result.w} keys`)
})

test('a get of a 768 MiB value holds no more memory than a load of it, nor more than one extra copy', async (t) => {
  const root = tempRoot(t)
  parsed(await runFixture('huge-value.mjs', ['write', root, '768']))
  const get = parsed(await runFixture('huge-value.mjs', ['get', root]))
  const load = parsed(await runFixture('huge-value.mjs', ['load', root]))
  assert.equal(get.ok && load.ok, true)
  assert.equal(get.length, 768 * 1024 * 1024)
  // One decoded copy of the value, plus slack for the process itself.
  assert.ok(get.growthMiB <= 768 * 1.25, `get grew RSS by ${get.growthMiB} MiB`)
  assert.ok(get.growthMiB <= load.growthMiB * 1.25 + 64, `get ${get.growthMiB} MiB, load ${load.growthMiB} MiB`)
})
