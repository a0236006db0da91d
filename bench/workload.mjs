// Deterministic, seeded workload shaped like a bundler's persistent cache for
// an app of N modules. Values are slices of real JS/CSS/text files from the
// installed npm packages (so they compress like build output), with a small
// share of incompressible bytes. Cached in bench/data/workload-<N>.bin.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const KiB = 1024

/** mulberry32: small, fast, seedable. */
export function rng(seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  next.int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1))
  next.normal = () => Math.sqrt(-2 * Math.log(next() || 1e-12)) * Math.cos(2 * Math.PI * next())
  return next
}

function corpus() {
  const roots = ['webpack/lib', 'webpack/hot', 'webpack/schemas', 'lmdb', 'acorn/dist', 'enhanced-resolve/lib', 'terser/dist']
    .map((p) => path.join(here, 'node_modules', p))
    .filter((p) => fs.existsSync(p))
  const files = []
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (/\.(js|mjs|cjs|css|json|md|d\.ts|txt)$/.test(e.name)) files.push(p)
    }
  }
  roots.forEach(walk)
  if (files.length === 0) throw new Error('bench/node_modules is empty: run npm install in bench/ first')
  return Buffer.concat(files.map((f) => fs.readFileSync(f)))
}

/** Piecewise lognormal through (median, p90, p99), capped. */
function sizeSampler(r, median, p90, p99, cap) {
  const s1 = Math.log(p90 / median) / 1.2816
  const s2 = Math.log(p99 / p90) / (2.3263 - 1.2816)
  return () => {
    const z = r.normal()
    const v = z <= 1.2816 ? median * Math.exp(s1 * z) : p90 * Math.exp(s2 * (z - 1.2816))
    return Math.max(1, Math.min(cap, Math.round(v)))
  }
}

export function generate(n, seed = 1) {
  const r = rng(seed)
  const text = corpus()
  const slice = (len) => {
    if (r() < 0.03) return Buffer.from(Array.from({ length: len }, () => r.int(0, 255)))
    if (len >= text.length) return Buffer.concat([text, Buffer.alloc(len - text.length, 32)])
    const start = r.int(0, text.length - len)
    return Buffer.from(text.subarray(start, start + len))
  }
  const dirs = ['src/components', 'src/pages', 'src/utils', 'node_modules/react/cjs', 'node_modules/lodash', 'src/hooks/internal']
  const filePath = (len) => {
    let p = `/home/dev/app/${dirs[r.int(0, dirs.length - 1)]}/`
    while (p.length < len - 4) p += `m${r.int(0, 1e6).toString(36)}/`
    return Buffer.from(`${p.slice(0, len - 4)}.tsx`)
  }
  const loaderChain = (len) => {
    let s = 'javascript/auto|'
    const loaders = ['babel-loader@9.1.3', 'ts-loader@9.5.1', 'css-loader@6.8.1', 'postcss-loader@7.3.3']
    while (s.length < len / 2) s += `/home/dev/app/node_modules/${loaders[r.int(0, 3)]}/dist/cjs.js??ruleSet[1].rules[${r.int(0, 9)}]!`
    return Buffer.concat([Buffer.from(s), filePath(len - s.length)]).subarray(0, len)
  }
  const graphSize = sizeSampler(r, 6 * KiB, 30 * KiB, 250 * KiB, 8 * 1024 * KiB)
  const codegenSize = sizeSampler(r, 4 * KiB, 20 * KiB, 150 * KiB, 8 * 1024 * KiB)
  const scope = (name, count, key, value) => {
    const items = []
    const seen = new Set()
    while (items.length < count) {
      const k = key()
      const id = k.toString('latin1')
      if (seen.has(id)) continue
      seen.add(id)
      items.push([k, value()])
    }
    return { name, items }
  }
  return [
    scope('snapshot_file', Math.round(1.2 * n), () => filePath(r.int(60, 160)), () => slice(r.int(16, 48))),
    scope('snapshot_missing', 3 * n, () => filePath(r.int(60, 160)), () => slice(r.int(1, 8))),
    scope('snapshot_context', Math.round(0.1 * n), () => filePath(r.int(70, 90)), () => slice(r.int(28, 36))),
    scope('module_graph', n, () => loaderChain(r.int(120, 400)), () => slice(graphSize())),
    scope('dependencies', Math.round(2.5 * n), () => filePath(r.int(40, 200)), () => slice(r.int(64, 512))),
    scope('codegen', n, () => loaderChain(r.int(120, 400)), () => slice(codegenSize())),
    scope('module_hashes', n, () => loaderChain(r.int(120, 400)), () => slice(16)),
    scope('meta', 4, () => Buffer.from(`meta-${r.int(0, 1e9)}`), () => slice(r.int(1, 1024 * KiB))),
  ]
}

/** The incremental change: 1% of items get new values, 0.5% are removed. */
export function change(scopes, seed = 2) {
  const r = rng(seed)
  const text = Buffer.from('export const changed = ' + 'x'.repeat(64))
  const sets = []
  const removes = []
  for (const { name, items } of scopes) {
    for (const [k, v] of items) {
      const x = r()
      if (x < 0.01) sets.push([name, k, Buffer.concat([text, v.subarray(0, Math.max(0, v.length - text.length))])])
      else if (x < 0.015) removes.push([name, k])
    }
  }
  return { sets, removes }
}

function encode(scopes) {
  const parts = []
  const u32 = (n) => {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(n)
    return b
  }
  parts.push(u32(scopes.length))
  for (const { name, items } of scopes) {
    parts.push(u32(name.length), Buffer.from(name), u32(items.length))
    for (const [k, v] of items) parts.push(u32(k.length), k, u32(v.length), v)
  }
  return Buffer.concat(parts)
}

function decode(buf) {
  let o = 0
  const u32 = () => ((o += 4), buf.readUInt32LE(o - 4))
  const bytes = (n) => ((o += n), buf.subarray(o - n, o))
  const scopes = []
  for (let s = u32(); s > 0; s--) {
    const name = bytes(u32()).toString()
    const items = []
    for (let i = u32(); i > 0; i--) items.push([bytes(u32()), bytes(u32())])
    scopes.push({ name, items })
  }
  return scopes
}

/** The file caching the workload for `n` modules (generated on first use):
 * u32 scope count, then per scope its name, its item count and each key and
 * value, every field prefixed by its u32 length (little-endian). */
export function workloadFile(n) {
  const file = path.join(here, 'data', `workload-${n}.bin`)
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file + '.tmp', encode(generate(n)))
    fs.renameSync(file + '.tmp', file)
  }
  return file
}

/** The workload for `n` modules, generated once and cached on disk. */
export function workload(n) {
  return decode(fs.readFileSync(workloadFile(n)))
}

export function describe(scopes) {
  let items = 0
  let bytes = 0
  for (const s of scopes) for (const [k, v] of s.items) (items++, (bytes += k.length + v.length))
  return { items, bytes }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const n = Number(process.argv[2] ?? 10000)
  const t0 = performance.now()
  const scopes = workload(n)
  const { items, bytes } = describe(scopes)
  console.log(`N=${n}: ${items} items, ${(bytes / 1048576).toFixed(1)} MiB raw (${(performance.now() - t0).toFixed(0)} ms)`)
  for (const s of scopes) {
    const sizes = s.items.map(([, v]) => v.length).sort((a, b) => a - b)
    const q = (p) => sizes[Math.min(sizes.length - 1, Math.floor(p * sizes.length))]
    console.log(`  ${s.name.padEnd(17)} ${String(s.items.length).padStart(6)} values median ${q(0.5)} p90 ${q(0.9)} p99 ${q(0.99)} max ${sizes[sizes.length - 1]}`)
  }
}
