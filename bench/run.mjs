// The side-by-side benchmark: every system, every measurement in a fresh
// process, systems alternating within each run, medians over the runs.
//
//   npm run bench                 N = 10 000, 5 runs, every system
//   npm run bench -- --quick      N = 2 000, 1 run (a smoke run, < 60 s)
//   npm run bench -- --n 50000 --runs 3 --systems packcache,plain --growth
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { workload, describe } from './workload.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const flag = (name) => args.includes(`--${name}`)
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : def
}
const quick = flag('quick')
const n = Number(opt('n', quick ? 2000 : 10000))
const runs = Number(opt('runs', quick ? 1 : 5))
const systems = opt('systems', 'packcache,packcache-zstd,packcache-none,packcache-columns,rspack,lmdb,lmdb-compressed,webpack,plain').split(',')
const work = fs.mkdtempSync(path.join(opt('dir', os.tmpdir()), 'packcache-bench-'))

function measure(system, op, dir, seed = 2) {
  const out = execFileSync(process.execPath, [path.join(here, 'driver.mjs'), system, op, dir, String(n), String(seed)], { encoding: 'utf8', maxBuffer: 1 << 20 })
  return JSON.parse(out.trim().split('\n').pop())
}

function limits(dir) {
  const manifest = path.join(here, 'limits', 'Cargo.toml')
  execFileSync('cargo', ['build', '--release', '--quiet', '--manifest-path', manifest], { stdio: 'inherit' })
  const bin = path.join(here, 'limits', 'target', 'release', 'packcache-limits')
  const versionDir = path.join(dir, fs.readdirSync(dir).find((d) => /^pc\d+-/.test(d)))
  return JSON.parse(execFileSync(bin, [versionDir], { encoding: 'utf8' }).trim())
}

/** Builds rspack's storage driver (bench/rspack-storage; ≈ 4 min the first
 * time). rspack builds with a nightly compiler and one of its crates turns on
 * regex's nightly-only `pattern` feature, so the stable compiler is told to
 * allow it (RUSTC_BOOTSTRAP); Cargo.lock pins a regex whose impl matches
 * this compiler's. `false` (and the reason printed) if that fails. */
function buildRspackPeer() {
  const manifest = path.join(here, 'rspack-storage', 'Cargo.toml')
  try {
    execFileSync('cargo', ['build', '--release', '--quiet', '--locked', '--manifest-path', manifest], {
      stdio: 'inherit',
      env: { ...process.env, RUSTC_BOOTSTRAP: '1' },
    })
    return true
  } catch (e) {
    console.log(`rspack_storage did not build (${e.message.split('\n')[0]}): left out of this run`)
    return false
  }
}
if (systems.includes('rspack') && !buildRspackPeer()) systems.splice(systems.indexOf('rspack'), 1)

// Systems without a single-key read (rspack_storage loads whole scopes only).
const NO_GET = new Set(['rspack'])

const median = (xs) => {
  const s = xs.filter((x) => x != null).sort((a, b) => a - b)
  return s.length ? s[Math.floor(s.length / 2)] : null
}

workload(n) // generate (and cache) before timing anything
const { items, bytes } = describe(workload(n))
console.log(`workload N=${n}: ${items} items, ${(bytes / 1048576).toFixed(1)} MiB raw; ${runs} run(s); ${os.cpus().length} cores, ${os.cpus()[0].model}`)

const results = Object.fromEntries(systems.map((s) => [s, []]))
const limitRuns = []
for (let r = 0; r < runs; r++) {
  const order = systems.map((_, i) => systems[(i + r) % systems.length])
  for (const system of order) {
    const dir = path.join(work, `${system}-${r}`)
    const save = measure(system, 'save', dir)
    const load = measure(system, 'load', dir)
    const cold = measure(system, 'coldload', dir)
    const get = NO_GET.has(system) ? null : measure(system, 'get', dir)
    const getMany = system.startsWith('packcache') ? measure(system, 'getmany', dir) : null
    const inc = measure(system, 'inc', dir)
    results[system].push({ save, load, cold, get, getMany, inc })
    if (system === 'packcache') limitRuns.push(limits(dir))
    fs.rmSync(dir, { recursive: true, force: true })
    process.stdout.write('.')
  }
}
console.log()

// The limits are measured after every packcache run (they are as noisy as
// everything else here); each figure is the median over those runs.
const limit = limitRuns.length
  ? Object.fromEntries(Object.keys(limitRuns[0]).map((k) => [k, median(limitRuns.map((l) => l[k]))]))
  : null

const rows = systems.map((system) => {
  const m = (f) => median(results[system].map(f))
  return {
    system,
    save: m((x) => x.save.ms),
    load: m((x) => x.load.ms),
    cold: m((x) => x.cold.ms),
    inc: m((x) => x.inc.ms),
    incWritten: m((x) => x.inc.written ?? x.inc.diskDelta),
    get: m((x) => x.get?.ms),
    warmGet: m((x) => x.get?.warmUs),
    getMany: m((x) => x.getMany?.ms),
    disk: m((x) => x.save.disk),
    rss: m((x) => x.load.rss),
    loaded: m((x) => x.load.bytes),
    eld: m((x) => x.load.eldMs),
  }
})
const base = rows.find((r) => r.system === 'packcache') ?? rows[0]
const mib = (b) => (b == null ? '-' : `${(b / 1048576).toFixed(1)}`)
const ms = (x) => (x == null ? '-' : x.toFixed(0))
const ratio = (x, y) => (x == null || y == null ? '' : ` (${(x / y).toFixed(2)}×)`)
const table = [
  '| system | full save ms | full load ms | cold load ms | 1% incremental save ms | written MiB | 1000 gets ms | the same 1000 keys by getMany ms | disk MiB | load peak RSS MiB | load worst event-loop delay ms |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map((r) =>
    `| ${r.system} | ${ms(r.save)}${ratio(r.save, base.save)} | ${ms(r.load)}${ratio(r.load, base.load)} | ${ms(r.cold)}${ratio(r.cold, base.cold)} | ${ms(r.inc)}${ratio(r.inc, base.inc)} | ${mib(r.incWritten)} | ${ms(r.get)}${ratio(r.get, base.get)} | ${ms(r.getMany)} | ${mib(r.disk)} | ${mib(r.rss)} | ${ms(r.eld)} |`),
]
console.log(table.join('\n'))
console.log(`\nwarm get (the same 1 000 keys again, same process), µs per get: ${rows.map((r) => `${r.system} ${r.warmGet?.toFixed(1) ?? '-'}`).join(', ')}`)
if (limit) {
  const codec = limit.codec ?? 'zstd'
  console.log(`\nlimits (Rust, all cores, packcache's packs, ${codec}): read + decode ${limit.readDecodeMs} ms (buffers reused), ` +
    `${limit.readDecodeKeepMs ?? '-'} ms (all output kept, as a load must); encode ${limit.encodeMs} ms`)
  const pc = rows.find((r) => r.system === 'packcache')
  const plain = rows.find((r) => r.system === 'plain')
  if (pc) {
    console.log(`packcache full load / read+decode limit: ${(pc.load / limit.readDecodeMs).toFixed(2)}× (kept: ${(pc.load / (limit.readDecodeKeepMs ?? limit.readDecodeMs)).toFixed(2)}×); full save / encode limit: ${(pc.save / limit.encodeMs).toFixed(2)}×`)
    console.log(`packcache disk / raw: ${(pc.disk / bytes).toFixed(3)}; load peak RSS / loaded bytes: ${(pc.rss / pc.loaded).toFixed(2)}`)
  }
  if (pc && plain) console.log(`packcache full load / plain: ${(pc.load / plain.load).toFixed(2)}× (cold page cache: ${(pc.cold / plain.cold).toFixed(2)}×)`)
}
// Issue 13's targets are ratios to rspack_storage, the system packcache succeeds.
const rspack = rows.find((r) => r.system === 'rspack')
if (rspack) {
  const vs = (name, what) => {
    const r = rows.find((x) => x.system === name)
    return r ? `${name} ${(r[what] / rspack[what]).toFixed(2)}×` : null
  }
  const line = (what) => ['packcache', 'packcache-columns', 'packcache-none', 'packcache-zstd'].map((s) => vs(s, what)).filter(Boolean).join(', ')
  console.log(`\n/ rspack_storage: full load ${line('load')}; full save ${line('save')}; cold load ${line('cold')}; disk ${line('disk')}`)
}
if (flag('growth')) {
  // 50 incremental generations, 1% changed (and 0.5% removed) each.
  const dir = path.join(work, 'growth')
  const fresh = measure('packcache', 'save', dir)
  const lines = [`\ndisk growth (packcache): fresh save ${mib(fresh.disk)} MiB`, '| generation | disk MiB | disk / fresh | load ms |', '| --- | --- | --- | --- |']
  let gen1Load = null
  for (let g = 1; g <= 50; g++) {
    const inc = measure('packcache', 'inc', dir, 1000 + g)
    if (g === 1 || g === 10 || g === 50) {
      const loads = [0, 1, 2].map(() => measure('packcache', 'load', dir).ms)
      const load = median(loads)
      gen1Load ??= load
      lines.push(`| ${g} | ${mib(inc.disk)} | ${(inc.disk / fresh.disk).toFixed(2)} | ${ms(load)} (${(load / gen1Load).toFixed(2)}× gen 1) |`)
    }
  }
  console.log(lines.join('\n'))
}
fs.rmSync(work, { recursive: true, force: true })
