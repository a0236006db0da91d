// One huge value (default 2 GiB): how long set(), save(), get() and load()
// take and the peak RSS of a process that only gets, or only loads, it.
//
//   node bench/huge-value.mjs [GiB] [zstd|none]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
const { PackStorage } = createRequire(import.meta.url)('../index.js')

const [gib = '2', compression = 'zstd', root, step] = process.argv.slice(2)
const size = Math.floor(Number(gib) * 1024 ** 3)
const opts = (dir) => ({ root: dir, version: '1', compression })
const ms = (t0) => Math.round(performance.now() - t0)

if (step === 'get' || step === 'load') {
  const s = new PackStorage(opts(root))
  const t0 = performance.now()
  const v = step === 'get' ? await s.get('s', 'big') : (await s.load('s'))[0][1]
  const took = ms(t0)
  if (v.length !== size || v[size - 1] !== (size - 1) % 251) throw new Error('wrong bytes')
  console.log(JSON.stringify({ ms: took, peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }))
} else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'packcache-huge-'))
  try {
    const value = Buffer.allocUnsafe(size)
    for (let i = 0; i < size; i += 65536) value.subarray(i, i + 65536).fill(0)
    for (let i = 0; i < size; i += 4096) value[i] = i % 251
    value[size - 1] = (size - 1) % 251
    const s = new PackStorage(opts(dir))
    let t0 = performance.now()
    s.set('s', 'big', value)
    const setMs = ms(t0)
    t0 = performance.now()
    await s.save()
    const saveMs = ms(t0)
    await s.close()
    const self = fileURLToPath(import.meta.url)
    const child = (what) => JSON.parse(execFileSync(process.execPath, [self, gib, compression, dir, what], { encoding: 'utf8' }))
    const get = child('get')
    const load = child('load')
    console.log(`${gib} GiB value, ${compression}: set ${setMs} ms, save ${saveMs} ms; get ${get.ms} ms (peak RSS ${get.peakRssMiB} MiB); load ${load.ms} ms (peak RSS ${load.peakRssMiB} MiB)`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}
