// Worst event-loop delay while loads run concurrently: 8 scopes of 25 MiB
// (values of 16–64 KiB), loaded by Promise.all of eight load() calls, by one
// loadMany, and by a mix (load, loadColumns, loadMany and gets at once).
// Each measurement runs in a fresh process; medians of `runs` (default 5).
//
//   node bench/concurrent-loads.mjs [runs]
//   PACKCACHE_ADDON=/path/to/index.js node bench/concurrent-loads.mjs   (another build)
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { monitorEventLoopDelay } from 'node:perf_hooks'

const addon = process.env.PACKCACHE_ADDON ?? fileURLToPath(new URL('../index.js', import.meta.url))
const { PackStorage } = createRequire(import.meta.url)(addon)
const [runsArg = '5', root, mode] = process.argv.slice(2)
const SCOPES = Array.from({ length: 8 }, (_, i) => `scope${i}`)

function fill(dir) {
  const s = new PackStorage({ root: dir, version: '1' })
  let x = 12345
  const rand = () => ((x = (x * 1103515245 + 12345) >>> 0), x / 2 ** 32)
  const words = ['import', 'export', 'const', 'function', 'return', 'module', 'value', 'render', '=>', '{}', '\n']
  for (const scope of SCOPES) {
    let bytes = 0
    for (let i = 0; bytes < 25 * 1024 * 1024; i++) {
      const len = 16384 + Math.floor(rand() * 49152)
      let text = ''
      while (text.length < len) text += words[Math.floor(rand() * words.length)] + ' '
      s.set(scope, `/src/${scope}/m${i}.js`, Buffer.from(text.slice(0, len)))
      bytes += len
    }
  }
  return s.save()
}

async function measure(dir, mode) {
  const s = new PackStorage({ root: dir, version: '1' })
  const eld = monitorEventLoopDelay({ resolution: 1 })
  eld.enable()
  await new Promise((r) => setTimeout(r, 20))
  const t0 = performance.now()
  if (mode === 'loads') await Promise.all(SCOPES.map((scope) => s.load(scope)))
  else if (mode === 'loadMany') await s.loadMany(SCOPES)
  else {
    await Promise.all([
      ...SCOPES.slice(0, 4).map((scope) => s.load(scope)),
      s.loadColumns(SCOPES.slice(4, 6)),
      s.loadMany(SCOPES.slice(6)),
      ...Array.from({ length: 50 }, (_, i) => s.get(SCOPES[i % 8], `/src/${SCOPES[i % 8]}/m${i}.js`)),
    ])
  }
  const ms = performance.now() - t0
  await new Promise((r) => setTimeout(r, 5))
  eld.disable()
  return { ms, eldMs: eld.max / 1e6 }
}

if (mode) {
  console.log(JSON.stringify(await measure(root, mode)))
} else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'packcache-concurrent-'))
  try {
    await fill(dir)
    const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1]
    for (const m of ['loads', 'loadMany', 'mix']) {
      const runs = Array.from({ length: Number(runsArg) }, () =>
        JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), runsArg, dir, m], { encoding: 'utf8', env: process.env })),
      )
      const worst = runs.map((r) => r.eldMs)
      console.log(`${m.padEnd(8)} load ${median(runs.map((r) => r.ms)).toFixed(0)} ms, worst event-loop delay median ${median(worst).toFixed(1)} ms (range ${Math.min(...worst).toFixed(1)}–${Math.max(...worst).toFixed(1)})`)
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}
