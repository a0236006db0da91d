import test from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { PackStorage, tempRoot } from './helpers.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const child = path.join(here, 'fixtures', 'saver.mjs')

function run(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.on('data', (d) => (out += d))
    p.stderr.on('data', (d) => (err += d))
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`child exited ${code}: ${err}`))))
  })
}

test('two processes saving disjoint keys concurrently lose nothing', async (t) => {
  const root = tempRoot(t)
  const rounds = 15
  const perRound = 40
  await Promise.all([run([root, 'A', String(rounds), String(perRound)]), run([root, 'B', String(rounds), String(perRound)])])
  const s = new PackStorage({ root, version: 'shared' })
  const pairs = await s.load('modules')
  const keys = new Set(pairs.map(([k]) => k.toString()))
  assert.equal(keys.size, 2 * rounds * perRound)
  for (const who of ['A', 'B']) {
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < perRound; i++) assert.ok(keys.has(`${who}/${r}/${i}`), `${who}/${r}/${i} lost`)
    }
  }
  for (const [k, v] of pairs) assert.equal(v.toString(), `value of ${k}`)
})

test('readers in other processes never fail while a writer saves as fast as it can', async (t) => {
  const fixture = path.join(here, 'fixtures', 'readers-under-saves.mjs')
  const out = await new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [fixture, tempRoot(t), '6'], { stdio: ['ignore', 'pipe', 'inherit'] })
    let text = ''
    p.stdout.on('data', (d) => (text += d))
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(text)) : reject(new Error(`exited ${code}`))))
  })
  assert.ok(out.saves > 20 && out.reads > 100, JSON.stringify(out))
  assert.deepEqual({ errors: out.errors, firstErrors: out.firstErrors, wrong: out.wrong }, { errors: 0, firstErrors: [], wrong: 0 })
})
