// One measurement in a fresh process: node bench/driver.mjs <system> <op> <dir> <N>
// Prints one JSON line. Ops: save, load, coldload (page cache evicted first), inc, get, size.
import fs from 'node:fs'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { systems } from './systems.mjs'
import { workload, change, rng } from './workload.mjs'

const [systemName, op, dir, n, seed = '2'] = process.argv.slice(2)
const system = systems[systemName]()
const NAMES = ['snapshot_file', 'snapshot_missing', 'snapshot_context', 'module_graph', 'dependencies', 'codegen', 'module_hashes', 'meta']

export function diskBytes(d) {
  let total = 0
  for (const e of fs.readdirSync(d, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += fs.statSync(path.join(e.parentPath ?? e.path, e.name)).blocks * 512
  }
  return total
}

/** Peak resident set of this process (VmHWM; unlike getrusage, not inherited across exec). */
function peakRss() {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'))
    if (m) return Number(m[1]) * 1024
  } catch {}
  return process.resourceUsage().maxRSS * 1024
}

/** Drops every file under `d` from the page cache (written back first: dirty
 * pages cannot be dropped), so the next read comes from the disk. */
function evict(d) {
  execFileSync('sync', ['-f', d])
  for (const e of fs.readdirSync(d, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue
    const file = path.join(e.parentPath ?? e.path, e.name)
    // GNU dd with count=0 and iflag=nocache: posix_fadvise(DONTNEED) of the whole file.
    execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none'])
  }
}

/** Writes back every dirty page on the machine: a save timed right after
 * another run's saves otherwise competes with the kernel writing theirs back
 * (measured here: the same rspack_storage save took 412 to 1 696 ms). */
function settleWrites() {
  execFileSync('sync')
}

const out = {}
if (op === 'save' || op === 'inc') settleWrites()
if (op === 'coldload') {
  evict(dir)
}
if (op === 'save') {
  const scopes = workload(Number(n))
  const t0 = performance.now()
  const result = await system.save(dir, scopes, { n: Number(n) })
  out.ms = system.selfTimed ? result.ms : performance.now() - t0
  out.disk = diskBytes(dir)
} else if (op === 'load' || op === 'coldload') {
  let items = 0
  let bytes = 0
  let check = 0
  const touch = (pairs) => {
    for (const [k, v] of pairs) {
      items++
      bytes += k.length + v.length
      check ^= v.length ? v[0] : 0
    }
  }
  // The same touch of a scope given as `loadColumns` parts.
  touch.columns = (parts) => {
    for (const { buffer, offsets } of parts) {
      for (let i = 0; i < offsets.length; i += 4) {
        items++
        bytes += offsets[i + 1] - offsets[i] + offsets[i + 3] - offsets[i + 2]
        check ^= offsets[i + 3] > offsets[i + 2] ? buffer[offsets[i + 2]] : 0
      }
    }
  }
  const eld = monitorEventLoopDelay({ resolution: 1 })
  eld.enable()
  // Let the monitor's timer run first: a load that blocks the thread then
  // shows up as one long delay instead of going unseen.
  await new Promise((r) => setTimeout(r, 20))
  const t0 = performance.now()
  const result = await system.load(dir, NAMES, touch)
  out.ms = performance.now() - t0
  await new Promise((r) => setTimeout(r, 5))
  eld.disable()
  out.eldMs = eld.max / 1e6
  out.rss = peakRss()
  Object.assign(out, { items, bytes, check })
  // A peer in another process: its own time, memory and touch of the pairs;
  // no JS event loop to delay.
  if (system.selfTimed) Object.assign(out, result, { eldMs: null })
} else if (op === 'inc') {
  const scopes = workload(Number(n))
  const delta = change(scopes, Number(seed))
  const state = system.prepareInc ? await system.prepareInc(dir, NAMES) : undefined
  const before = diskBytes(dir)
  const t0 = performance.now()
  const written = await system.inc(dir, delta, state)
  out.ms = system.selfTimed ? written.ms : performance.now() - t0
  out.written = system.selfTimed ? (written.written ?? null) : (written ?? null)
  out.disk = diskBytes(dir)
  out.diskDelta = out.disk - before
  out.changed = delta.sets.length
  out.removed = delta.removes.length
} else if (op === 'get') {
  const scopes = workload(Number(n))
  const r = rng(3)
  const picks = Array.from({ length: 1000 }, () => {
    const s = scopes[r.int(0, scopes.length - 2)]
    return [s.name, s.items[r.int(0, s.items.length - 1)][0]]
  })
  const get = await system.openForGet(dir)
  const t0 = performance.now()
  let found = 0
  for (const [name, key] of picks) if ((await get(name, key)) !== null) found++
  out.ms = performance.now() - t0
  out.found = found
  // The same keys again in this process: a warm get (files open, checked).
  const t1 = performance.now()
  for (const [name, key] of picks) await get(name, key)
  out.warmUs = ((performance.now() - t1) * 1000) / picks.length
} else if (op === 'getmany') {
  // The same 1 000 keys as `get`, asked per scope with one getMany each.
  const scopes = workload(Number(n))
  const r = rng(3)
  const byScope = new Map()
  for (let i = 0; i < 1000; i++) {
    const s = scopes[r.int(0, scopes.length - 2)]
    const key = s.items[r.int(0, s.items.length - 1)][0]
    byScope.set(s.name, [...(byScope.get(s.name) ?? []), key])
  }
  const getMany = await system.openForGetMany(dir)
  const t0 = performance.now()
  let found = 0
  for (const [name, keys] of byScope) for (const v of await getMany(name, keys)) if (v !== null) found++
  out.ms = performance.now() - t0
  out.found = found
} else if (op === 'size') {
  out.disk = diskBytes(dir)
}
console.log(JSON.stringify(out))
