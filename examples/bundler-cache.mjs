// A bundler's persistent cache, end to end: a cold build fills the cache and
// saves it, a warm start reopens and loads it, an edit saves incrementally.
//
//   npm run example            (or: node examples/bundler-cache.mjs [modules] [cacheDir])
import { createRequire } from 'node:module'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const { PackStorage, hash } = require('../index.js')

const here = path.dirname(fileURLToPath(import.meta.url))
const modules = Number(process.argv[2] ?? 5000)
const root = process.argv[3] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'packcache-example-'))
const version = `example-bundler@1.0.0+${hash(String(modules)).slice(0, 8)}`

/** Source text to slice values from: real JS shipped in node_modules. */
function corpus() {
  const dir = path.join(here, '..', 'node_modules')
  const chunks = []
  let size = 0
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (size > 8 << 20) return
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (/\.(js|mjs|cjs|ts|json|md)$/.test(e.name)) {
        const b = fs.readFileSync(p)
        chunks.push(b)
        size += b.length
      }
    }
  }
  if (fs.existsSync(dir)) walk(dir)
  return chunks.length ? Buffer.concat(chunks) : Buffer.from('export const x = 1;\n'.repeat(1 << 16))
}

const text = corpus()
let seed = 42
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32)
const slice = (len) => {
  const start = Math.floor(rand() * Math.max(1, text.length - len))
  return text.subarray(start, start + len)
}
const modulePath = (i) => `/app/src/${['components', 'pages', 'utils', 'hooks'][i % 4]}/m${i}.tsx`

function build(cache, changedOnly) {
  let bytes = 0
  for (let i = 0; i < modules; i++) {
    if (changedOnly && i % 100 !== 0) continue
    const id = `babel-loader!ts-loader!${modulePath(i)}`
    const code = slice(512 + Math.floor(rand() * 8192))
    const graph = Buffer.from(JSON.stringify({ deps: [modulePath(i + 1), modulePath(i + 7)], size: code.length }))
    cache.set('codegen', id, code)
    cache.set('module_graph', id, graph)
    cache.set('module_hashes', id, Buffer.from(hash(code), 'hex').subarray(0, 16))
    cache.set('snapshot_file', modulePath(i), Buffer.from(`${Date.now()}:${code.length}`))
    bytes += code.length + graph.length + 16 + 20
  }
  return bytes
}

const ms = (t0) => `${(performance.now() - t0).toFixed(1)} ms`
const mib = (n) => `${(n / 1048576).toFixed(2)} MiB`
function diskUsage(dir) {
  let n = 0
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += fs.statSync(path.join(e.parentPath ?? e.path, e.name)).size
  }
  return n
}
const scopes = ['codegen', 'module_graph', 'module_hashes', 'snapshot_file']

console.log(`packcache example: ${modules} modules, cache at ${root}`)

// 1. Cold build: compute everything, then persist it.
let cache = new PackStorage({ root, version })
let t0 = performance.now()
const raw = build(cache, false)
let stats = await cache.save()
console.log(`cold build  save: ${ms(t0)}, ${stats.itemsWritten} items, ${stats.packsWritten} packs, ` +
  `${mib(raw)} raw -> ${mib(stats.bytesWritten)} written`)
await cache.close()

// 2. Warm start: a new instance loads every scope.
cache = new PackStorage({ root, version })
t0 = performance.now()
const loaded = await cache.loadMany(scopes)
const loadTime = ms(t0)
let items = 0
let loadedBytes = 0
for (const pairs of loaded) for (const [k, v] of pairs) (items++, (loadedBytes += k.length + v.length))
console.log(`warm start  load: ${loadTime}, ${items} items, ${mib(loadedBytes)} in ${scopes.length} scopes`)
if (items !== modules * scopes.length) throw new Error(`expected ${modules * scopes.length} items, loaded ${items}`)

// 3. An edit: 1% of the modules change; the save writes only those.
t0 = performance.now()
build(cache, true)
stats = await cache.save()
console.log(`1% edit     save: ${ms(t0)}, ${stats.itemsWritten} items, ${mib(stats.bytesWritten)} written`)
const one = await cache.get('codegen', `babel-loader!ts-loader!${modulePath(0)}`)
console.log(`get one module: ${one.length} bytes; disk use ${mib(diskUsage(root))}; scopes ${(await cache.scopes()).join(', ')}`)
await cache.close()
if (!process.argv[3]) fs.rmSync(root, { recursive: true, force: true })
