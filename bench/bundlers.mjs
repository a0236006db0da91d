// The bundler plugins on a real project (scripts/bundler-project.mjs: the
// 641 ES modules of lodash-es, babel via babel-loader / @rollup/plugin-babel),
// every build a fresh process, rounds alternating between systems; medians.
//
//   node bench/bundlers.mjs [rounds=5] [--only webpack,rollup,vite,fingerprint]
//
// webpack: `cache: { type: 'filesystem' }` against the same config plus
// PackcacheWebpackPlugin: warm build, one-file-edit build, bytes the edit
// build writes into the cache directory, cache size on disk.
// rollup / vite: uncached build against a warm packcache/rollup build.
// fingerprint: checking 10 000 unchanged files, packcache's changedFiles
// against webpack's FileSystemInfo (a fresh one, as after a restart).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { createProject, repo } from '../scripts/bundler-project.mjs'

const require = createRequire(import.meta.url)
const args = process.argv.slice(2)
const rounds = Number(args.find((a) => /^\d+$/.test(a)) ?? 5)
const onlyAt = args.indexOf('--only')
const only = (onlyAt >= 0 ? args[onlyAt + 1] : 'webpack,rollup,vite,fingerprint').split(',')
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const mib = (bytes) => (bytes / 1048576).toFixed(1)
const results = []
const report = (line) => {
  results.push(line)
  console.log(line)
}

function diskBytes(dir) {
  let total = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += fs.statSync(path.join(entry.parentPath ?? entry.path, entry.name)).size
  }
  return total
}

/** Bytes of the files under `dir` created or changed since `since` (ms). */
function bytesWrittenSince(dir, since) {
  let total = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    const stat = fs.statSync(path.join(entry.parentPath ?? entry.path, entry.name))
    if (stat.mtimeMs >= since) total += stat.size
  }
  return total
}

async function webpackBench() {
  const p = createProject()
  const systems = ['filesystem', 'packcache']
  const warm = { filesystem: [], packcache: [] }
  const edit = { filesystem: [], packcache: [] }
  const written = { filesystem: [], packcache: [] }
  try {
    for (const s of systems) await p.build('webpack', s) // cold: fills each cache
    for (let round = 0; round < rounds; round++) {
      for (const s of systems) warm[s].push((await p.build('webpack', s)).ms)
      fs.appendFileSync(p.file('src/add.js'), `\n// round ${round}\n`)
      for (const s of systems) {
        const since = Date.now() - 1
        edit[s].push((await p.build('webpack', s)).ms)
        written[s].push(bytesWrittenSince(p.file(`.cache-webpack-${s}`), since))
      }
      // The edit is in both caches now; the next warm build is warm for both.
    }
    const row = (s) => ({
      warm: median(warm[s]),
      edit: median(edit[s]),
      written: median(written[s]),
      disk: diskBytes(p.file(`.cache-webpack-${s}`)),
    })
    const fsRow = row('filesystem')
    const pcRow = row('packcache')
    report(`webpack (${rounds} rounds, medians, ms): warm ${pcRow.warm} vs ${fsRow.warm} (${(pcRow.warm / fsRow.warm).toFixed(2)}×); ` +
      `one-file edit ${pcRow.edit} vs ${fsRow.edit} (${(pcRow.edit / fsRow.edit).toFixed(2)}×)`)
    report(`webpack edit build writes ${mib(pcRow.written)} MiB vs ${mib(fsRow.written)} MiB (${(pcRow.written / fsRow.written).toFixed(2)}×); ` +
      `disk after ${rounds} edits ${mib(pcRow.disk)} MiB vs ${mib(fsRow.disk)} MiB (${(pcRow.disk / fsRow.disk).toFixed(2)}×)`)
    report(`  all warm packcache ${warm.packcache.join(' ')} | filesystem ${warm.filesystem.join(' ')}`)
    report(`  all edit packcache ${edit.packcache.join(' ')} | filesystem ${edit.filesystem.join(' ')}`)
  } finally {
    p.remove()
  }
}

async function transformBench(tool) {
  const p = createProject()
  const cold = []
  const warm = []
  const bare = []
  try {
    await p.build(tool, 'packcache') // fills the cache
    for (let round = 0; round < rounds; round++) {
      cold.push((await p.build(tool, 'none')).ms)
      warm.push((await p.build(tool, 'packcache')).ms)
      bare.push((await p.build(tool, 'bare')).ms)
    }
    report(`${tool} + babel (${rounds} rounds, medians): warm packcache ${median(warm)} ms vs uncached ${median(cold)} ms ` +
      `(${(median(warm) / median(cold)).toFixed(2)}×); ${tool} without babel ${median(bare)} ms ` +
      `(${(median(bare) / median(cold)).toFixed(2)}×); disk ${mib(diskBytes(p.file(`.cache-${tool}-packcache`)))} MiB`)
  } finally {
    p.remove()
  }
}

async function fingerprintBench() {
  const { fingerprint, changedFiles } = require(path.join(repo, 'loader.js'))
  const FileSystemInfo = require(path.join(repo, 'node_modules', 'webpack', 'lib', 'FileSystemInfo.js'))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'packcache-fp-'))
  const files = []
  for (let d = 0; d < 100; d++) {
    fs.mkdirSync(path.join(dir, `d${d}`))
    for (let f = 0; f < 100; f++) {
      const file = path.join(dir, `d${d}`, `m${f}.js`)
      fs.writeFileSync(file, `export const v${f} = ${JSON.stringify('x'.repeat(200 + f))}\n`)
      files.push(file)
    }
  }
  const past = new Date(Date.now() - 3_600_000) // not "racy": a stat each, as for a real project
  for (const file of files) fs.utimesSync(file, past, past)
  const webpackCheck = async (options) => {
    const snapshot = await new Promise((resolve, reject) => {
      const info = new FileSystemInfo(fs, {})
      info.createSnapshot(Date.now(), files, [], [], options, (err, s) => (err ? reject(err) : resolve(s)))
    })
    const info = new FileSystemInfo(fs, {}) // a fresh process knows no timestamps
    const started = performance.now()
    await new Promise((resolve, reject) =>
      info.checkSnapshotValid(snapshot, (err, valid) => (err || !valid ? reject(err ?? new Error('invalid')) : resolve())),
    )
    return performance.now() - started
  }
  const ours = []
  const timestamps = []
  const hashes = []
  const snapshot = await fingerprint(files)
  for (let round = 0; round < Math.max(rounds, 5); round++) {
    const started = performance.now()
    const changed = await changedFiles(snapshot)
    ours.push(performance.now() - started)
    if (changed.length !== 0) throw new Error('files changed during the benchmark')
    timestamps.push(await webpackCheck({ timestamp: true }))
    hashes.push(await webpackCheck({ timestamp: true, hash: true }))
  }
  const m = (xs) => median(xs).toFixed(1)
  report(`check 10 000 unchanged files (medians, ms): packcache changedFiles ${m(ours)}; webpack FileSystemInfo ` +
    `timestamp ${m(timestamps)} (${(median(ours) / median(timestamps)).toFixed(2)}×), timestamp+hash ${m(hashes)} ` +
    `(${(median(ours) / median(hashes)).toFixed(2)}×)`)
  fs.rmSync(dir, { recursive: true, force: true })
}

console.log(`${os.cpus().length} cores, ${os.cpus()[0].model}, node ${process.version}`)
if (only.includes('fingerprint')) await fingerprintBench()
if (only.includes('webpack')) await webpackBench()
for (const tool of ['rollup', 'vite']) if (only.includes(tool)) await transformBench(tool)
