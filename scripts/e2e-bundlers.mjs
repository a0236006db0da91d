// End to end with the real tools: packcache/webpack under webpack 5 +
// babel-loader, packcache/rollup under Rollup 4 and Vite 8 with
// @rollup/plugin-babel, on the 641 modules of lodash-es (see
// scripts/bundler-project.mjs). Every cached build's bundle must equal an
// uncached build of the same sources and configuration, byte for byte.
// Steps: cold, warm, one-file edit, babel config change, plugin/loader
// version change; for webpack also a build killed during its save and two
// concurrent builds on one cache directory. Exit 0 when all of it holds.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { createProject, writeBabelConfig, setPackageVersion, repo } from './bundler-project.mjs'

const require = createRequire(import.meta.url)
const { verify } = require(path.join(repo, 'loader.js'))
const log = (line) => console.log(`e2e-bundlers: ${line}`)

/** A cached build must give the uncached build's bundle; returns both results. */
async function same(p, tool, step, env = {}) {
  const plain = await p.build(tool, 'none', { OUT_DIR: p.file(`dist-${tool}-plain`) })
  const cached = await p.build(tool, 'packcache', env)
  assert.equal(cached.output, plain.output, `${tool} ${step}: cached output differs from the uncached build`)
  for (const ext of ['.map']) {
    const a = fs.readFileSync(plain.outputFile + ext, 'utf8')
    const b = fs.readFileSync(cached.outputFile + ext, 'utf8')
    assert.equal(b, a, `${tool} ${step}: source maps differ`)
  }
  log(`${tool} ${step}: identical output; ${cached.runs} of ${plain.runs} transforms ran; ${cached.ms} ms (uncached ${plain.ms} ms)`)
  return { cached, all: plain.runs }
}

/** Runs a step and checks how many transforms ran: a number, or 'all'. */
async function expectRuns(p, tool, step, runs) {
  const { cached, all } = await same(p, tool, step)
  assert.equal(cached.runs, runs === 'all' ? all : runs, `${tool} ${step}: transforms that ran`)
  assert.ok(all > 600, `${tool}: the project has hundreds of modules (${all})`)
}

function edit(p, n) {
  fs.appendFileSync(p.file('src/add.js'), `\n// edit ${n}\n`)
}

async function steps(p, tool, loaderPackage) {
  await expectRuns(p, tool, 'cold', 'all')
  await expectRuns(p, tool, 'warm', 0)
  edit(p, 1)
  await expectRuns(p, tool, 'one-file edit', 1)
  writeBabelConfig(p.dir, 'chrome 60')
  await expectRuns(p, tool, 'babel config change', 'all')
  await expectRuns(p, tool, 'warm again', 0)
  setPackageVersion(p.dir, loaderPackage, '99.0.0')
  await expectRuns(p, tool, `${loaderPackage} version change`, 'all')
}

async function webpackExtras(p) {
  const cacheDir = p.file('.cache-webpack-packcache')
  let kills = 0
  for (const delay of [0, 20, 60, 150]) {
    edit(p, `kill ${delay}`)
    const result = await p.build('webpack', 'packcache', { KILL_AFTER_DONE_MS: String(delay) })
    if (result.killed) kills++
    assert.deepEqual((await verify(cacheDir)).damaged, [])
    await same(p, 'webpack', `rebuild after a kill ${delay} ms after compiling (${result.killed ? 'killed' : 'had finished'})`)
  }
  assert.ok(kills >= 2, `at least two builds were killed during their save (${kills})`)
  edit(p, 'concurrent')
  const plain = await p.build('webpack', 'none', { OUT_DIR: p.file('dist-webpack-plain') })
  const both = await Promise.all(
    ['a', 'b'].map((out) => p.build('webpack', 'packcache', { OUT_DIR: p.file(`dist-concurrent-${out}`) })),
  )
  for (const r of both) assert.equal(r.output, plain.output, 'a concurrent build differs')
  await expectRuns(p, 'webpack', 'build after two concurrent ones', 0)
  assert.deepEqual((await verify(cacheDir)).damaged, [])
  log('webpack: killed saves and concurrent builds left a sound cache')
}

const started = Date.now()
for (const tool of ['webpack', 'rollup', 'vite']) {
  const p = createProject()
  try {
    await steps(p, tool, tool === 'webpack' ? 'babel-loader' : '@rollup/plugin-babel')
    if (tool === 'webpack') await webpackExtras(p)
  } finally {
    p.remove()
  }
}
log(`all steps passed in ${Math.round((Date.now() - started) / 1000)} s`)
