// packcache/webpack with the real webpack 5: what is restored, what is
// rebuilt, and that a cached build's output is the uncached build's.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { tempRoot, packFiles } from './helpers.mjs'

const require = createRequire(import.meta.url)
const webpack = require('webpack')
const { PackcacheWebpackPlugin } = require('../plugins/webpack.js')
const { verify } = require('../index.js')
const here = path.dirname(fileURLToPath(import.meta.url))
const loader = path.join(here, 'fixtures', 'counting-loader.cjs')

/** A project: src/main.js importing a.js and b.js, each through the counting loader. */
function project(t, count = 3) {
  const dir = tempRoot(t)
  const src = path.join(dir, 'src')
  fs.mkdirSync(src)
  const names = Array.from({ length: count - 1 }, (_, i) => `m${i}`)
  fs.writeFileSync(
    path.join(src, 'main.js'),
    names.map((n) => `import ${n} from './${n}.js'`).join('\n') + `\nconsole.log(${names.join(', ')})\n`,
  )
  for (const n of names) fs.writeFileSync(path.join(src, `${n}.js`), `export default ${JSON.stringify(n)}\n`)
  return { dir, src, cache: path.join(dir, 'cache'), file: (n) => path.join(src, n) }
}

function config(p, { plugin = {}, tag = 'v1', cache, name, out = 'dist', extraPlugins = [] } = {}) {
  return {
    mode: 'production',
    name,
    context: p.dir,
    entry: './src/main.js',
    output: { path: path.join(p.dir, out), filename: 'main.js' },
    optimization: { minimize: false },
    module: { rules: [{ test: /\.js$/, use: { loader, options: { tag } } }] },
    cache,
    infrastructureLogging: { level: 'log', console: capture },
    plugins: [new PackcacheWebpackPlugin({ cacheDirectory: p.cache, ...plugin }), ...extraPlugins],
  }
}

const logs = []
const capture = new Proxy(console, {
  get: (target, prop) =>
    ['log', 'info', 'warn', 'error', 'debug'].includes(prop)
      ? (...args) => logs.push(`${prop}: ${args.join(' ')}`)
      : target[prop],
})

/** Runs a build to the end (its cache stored); loader runs and output. */
function build(configs) {
  logs.length = 0
  globalThis.__packcacheLoaderRuns = 0
  return new Promise((resolve, reject) => {
    const compiler = webpack(configs)
    compiler.run((err, stats) => {
      if (err || stats.hasErrors()) return reject(err ?? new Error(stats.toString('errors-only')))
      compiler.close((closeErr) => {
        if (closeErr) return reject(closeErr)
        resolve({ runs: globalThis.__packcacheLoaderRuns, logs: [...logs], stats })
      })
    })
  })
}

const output = (p, out = 'dist') => fs.readFileSync(path.join(p.dir, out, 'main.js'), 'utf8')

test('warm_build_runs_no_loader_and_emits_the_uncached_output', async (t) => {
  const p = project(t)
  const cold = await build(config(p))
  assert.equal(cold.runs, 3)
  assert.ok(cold.logs.some((l) => /stored \d+ entries/.test(l)), cold.logs.join('\n'))
  const uncached = output(p)
  fs.rmSync(path.join(p.dir, 'dist'), { recursive: true })
  const warm = await build(config(p))
  assert.equal(warm.runs, 0)
  assert.ok(warm.logs.some((l) => /restored [1-9]\d* entries/.test(l)), warm.logs.join('\n'))
  assert.equal(output(p), uncached)
  assert.match(output(p), /"m0"/)
})

test('edited_module_is_rebuilt_alone', async (t) => {
  const p = project(t, 5)
  await build(config(p))
  fs.writeFileSync(p.file('m1.js'), 'export default "changed"\n')
  const edit = await build(config(p))
  assert.equal(edit.runs, 1)
  assert.match(output(p), /"changed"/)
})

test('changed_build_dependency_empties_the_cache', async (t) => {
  const p = project(t)
  const dep = path.join(p.dir, 'settings.cjs')
  fs.writeFileSync(dep, 'module.exports = 1\n')
  const plugin = { buildDependencies: { config: [dep] } }
  await build(config(p, { plugin }))
  assert.equal((await build(config(p, { plugin }))).runs, 0)
  fs.writeFileSync(dep, 'module.exports = 2\n')
  const changed = await build(config(p, { plugin }))
  assert.equal(changed.runs, 3)
  assert.ok(changed.logs.some((l) => l.includes('build dependencies changed') && l.includes('settings.cjs')), changed.logs.join('\n'))
  assert.equal((await build(config(p, { plugin }))).runs, 0, 'stored again under the new snapshot')
})

test('filesystem_cache_config_is_taken_over', async (t) => {
  const p = project(t)
  const dep = path.join(p.dir, 'settings.cjs')
  fs.writeFileSync(dep, 'module.exports = 1\n')
  const cache = { type: 'filesystem', version: 'a', buildDependencies: { config: [dep] } }
  await build(config(p, { cache }))
  assert.ok(!fs.existsSync(path.join(p.dir, 'node_modules', '.cache', 'webpack')), 'webpack wrote no cache of its own')
  assert.equal((await build(config(p, { cache }))).runs, 0)
  assert.equal((await build(config(p, { cache: { ...cache, version: 'b' } }))).runs, 3, 'cache.version separates')
  fs.writeFileSync(dep, 'module.exports = 2\n')
  assert.equal((await build(config(p, { cache: { ...cache, version: 'b' } }))).runs, 3, 'its buildDependencies count')
})

test('loader_options_change_in_a_config_build_dependency_is_a_miss', async (t) => {
  // As with webpack's own cache, loader options reach a module's identity by
  // reference, not content: the config file, as a build dependency, covers them.
  const p = project(t)
  const settings = path.join(p.dir, 'settings.json')
  const withTag = async (tag) => {
    fs.writeFileSync(settings, JSON.stringify({ tag }))
    const read = JSON.parse(fs.readFileSync(settings, 'utf8')).tag
    return build(config(p, { tag: read, plugin: { buildDependencies: { config: [settings] } } }))
  }
  assert.equal((await withTag('v1')).runs, 3)
  assert.equal((await withTag('v1')).runs, 0)
  assert.equal((await withTag('v2')).runs, 3)
  assert.match(output(p), /"v2"/)
})

test('cache_entry_with_another_etag_is_not_returned', async (t) => {
  const p = project(t)
  const roundTrip = (fn) =>
    new Promise((resolve, reject) => {
      const compiler = webpack(config(p))
      compiler.hooks.initialize.call()
      const cache = compiler.getCache('test')
      Promise.resolve(fn(cache)).then(
        (value) => compiler.cache.shutdown((err) => (err ? reject(err) : resolve(value))),
        reject,
      )
    })
  await roundTrip((cache) => cache.storePromise('item', 'etag-1', { text: 'stored' }))
  assert.equal(await roundTrip((cache) => cache.getPromise('item', 'etag-2')), undefined)
  assert.deepEqual(await roundTrip((cache) => cache.getPromise('item', 'etag-1')), { text: 'stored' })
})

test('entries_unused_for_max_age_are_dropped', async (t) => {
  const p = project(t, 5)
  const realNow = Date.now
  t.after(() => (Date.now = realNow))
  const DAY = 86_400_000
  await build(config(p))
  // Ten days on, only main.js and m0 are built (m1..m3 no longer imported).
  Date.now = () => realNow() + 10 * DAY
  fs.writeFileSync(p.file('main.js'), "import m0 from './m0.js'\nconsole.log(m0)\n")
  const fewer = await build(config(p, { plugin: { maxAge: 7 * DAY } }))
  assert.ok(fewer.logs.some((l) => /, [1-9]\d* expired/.test(l)), fewer.logs.join('\n'))
  // m1 comes back: its entry expired, so its loader runs again.
  fs.writeFileSync(p.file('main.js'), "import m0 from './m0.js'\nimport m1 from './m1.js'\nconsole.log(m0, m1)\n")
  const back = await build(config(p, { plugin: { maxAge: 7 * DAY } }))
  assert.equal(back.runs, 2, 'main.js (edited) and m1.js (expired)')
})

test('multi_compiler_configs_keep_their_own_entries', async (t) => {
  const p = project(t)
  const both = () => [config(p, { name: 'one', out: 'one' }), config(p, { name: 'two', out: 'two', tag: 'other' })]
  const cold = await build(both())
  assert.equal(cold.runs, 6)
  const warm = await build(both())
  assert.equal(warm.runs, 0)
  assert.match(output(p, 'one'), /"v1"/)
  assert.match(output(p, 'two'), /"other"/)
})

test('child_compiler_modules_are_cached', async (t) => {
  const p = project(t)
  fs.writeFileSync(p.file('worker.js'), 'export default "from the child"\n')
  const child = {
    apply(compiler) {
      compiler.hooks.make.tapAsync('child', (compilation, callback) => {
        const childCompiler = compilation.createChildCompiler('child', { filename: 'child.js' })
        new webpack.EntryPlugin(p.dir, './src/worker.js', { name: 'child' }).apply(childCompiler)
        childCompiler.runAsChild((err) => callback(err))
      })
    },
  }
  const cold = await build(config(p, { extraPlugins: [child] }))
  assert.equal(cold.runs, 4)
  const warm = await build(config(p, { extraPlugins: [child] }))
  assert.equal(warm.runs, 0)
  assert.match(fs.readFileSync(path.join(p.dir, 'dist', 'child.js'), 'utf8'), /from the child/)
})

test('damaged_store_warns_and_builds_correct_output', async (t) => {
  const p = project(t)
  await build(config(p))
  const uncached = output(p)
  for (const pack of packFiles(p.cache)) {
    const bytes = fs.readFileSync(pack)
    bytes.fill(0x55, 64)
    fs.writeFileSync(pack, bytes)
  }
  const damaged = await build(config(p))
  assert.equal(output(p), uncached)
  assert.equal(damaged.runs, 3)
  assert.ok(damaged.logs.some((l) => l.startsWith('warn:') && /PACKCACHE_CORRUPT/.test(l)), damaged.logs.join('\n'))
  const healed = await build(config(p))
  assert.equal(healed.runs, 0, `the damaged build stored a sound cache again:\n${healed.logs.join('\n')}`)
  assert.equal(output(p), uncached)
})

test('readonly_cache_is_read_and_never_written', async (t) => {
  const p = project(t)
  await build(config(p))
  fs.writeFileSync(p.file('m0.js'), 'export default "edited"\n')
  const before = packFiles(p.cache).map((f) => [f, fs.statSync(f).mtimeMs])
  const ro = await build(config(p, { plugin: { readonly: true } }))
  assert.equal(ro.runs, 1)
  assert.deepEqual(packFiles(p.cache).map((f) => [f, fs.statSync(f).mtimeMs]), before)
})

test('concurrent_builds_in_two_processes_leave_a_sound_cache', async (t) => {
  const p = project(t, 40)
  const script = path.join(p.dir, 'build.cjs')
  fs.writeFileSync(
    script,
    `const webpack = require(${JSON.stringify(require.resolve('webpack'))})
const { PackcacheWebpackPlugin } = require(${JSON.stringify(path.resolve(here, '../plugins/webpack.js'))})
const out = process.argv[2]
const compiler = webpack({ mode: 'production', context: ${JSON.stringify(p.dir)}, entry: './src/main.js',
  output: { path: require('path').join(${JSON.stringify(p.dir)}, out), filename: 'main.js' }, optimization: { minimize: false },
  module: { rules: [{ test: /\\.js$/, use: { loader: ${JSON.stringify(loader)} } }] },
  plugins: [new PackcacheWebpackPlugin({ cacheDirectory: ${JSON.stringify(p.cache)} })] })
compiler.run((err, stats) => {
  if (err || stats.hasErrors()) { console.error(err || stats.toString('errors-only')); process.exit(1) }
  compiler.close((e) => { if (e) { console.error(e); process.exit(1) } console.log('runs', globalThis.__packcacheLoaderRuns ?? 0) })
})
`,
  )
  const run = (out) =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [script, out], { stdio: ['ignore', 'pipe', 'pipe'] })
      let text = ''
      child.stdout.on('data', (d) => (text += d))
      child.stderr.on('data', (d) => (text += d))
      child.on('close', (code) => resolve({ code, text }))
    })
  for (let round = 0; round < 3; round++) {
    fs.writeFileSync(p.file('m0.js'), `export default "round ${round}"\n`)
    const results = await Promise.all([run('a'), run('b')])
    for (const r of results) assert.equal(r.code, 0, r.text)
    assert.equal(fs.readFileSync(path.join(p.dir, 'a', 'main.js'), 'utf8'), fs.readFileSync(path.join(p.dir, 'b', 'main.js'), 'utf8'))
  }
  const report = await verify(p.cache)
  assert.deepEqual(report.damaged, [])
  const last = await run('c')
  assert.equal(last.code, 0, last.text)
  assert.match(last.text, /runs 0/)
  assert.match(fs.readFileSync(path.join(p.dir, 'c', 'main.js'), 'utf8'), /round 2/)
})

test('compiler_without_webpacks_serializer_is_left_alone_with_a_warning', () => {
  // Rspack's compiler has webpack's cache hooks but no util.serialization.
  const warnings = []
  const cache = { type: 'filesystem' }
  const compiler = {
    webpack: { version: '5.75.0', util: {} },
    options: { cache },
    getInfrastructureLogger: () => ({ warn: (m) => warnings.push(m) }),
  }
  new PackcacheWebpackPlugin().apply(compiler)
  assert.equal(compiler.options.cache, cache, 'cache options untouched')
  assert.match(warnings.join('\n'), /stays off/)
})

test('entry_being_written_is_still_served_and_a_newer_put_wins', async (t) => {
  const { EntryGroups } = require('../plugins/webpack-groups.js')
  const { PackStorage } = require('../index.js')
  const storage = new PackStorage({ root: tempRoot(t), version: 'v' })
  let release
  const gate = new Promise((resolve) => (release = resolve))
  const serializer = {
    serialize: async (value) => (await gate, [Buffer.from(JSON.stringify(value))]),
    deserialize: ([bytes]) => JSON.parse(bytes.toString()),
  }
  const logger = { warn() {}, debug() {} }
  const groups = new EntryGroups({ storage, scope: 'w', serializer, logger, options: { groupSize: 10, maxAge: Infinity } })
  groups.put('Compilation/modules|a', 'e1', { v: 1 })
  const writing = groups.write(false)
  assert.deepEqual(await groups.get('Compilation/modules|a', 'e1'), { v: 1 }, 'served while its group is serialized')
  groups.put('Compilation/modules|a', 'e2', { v: 2 })
  release()
  assert.equal((await writing).entries, 1)
  assert.deepEqual(await groups.get('Compilation/modules|a', 'e2'), { v: 2 })
  assert.equal(await groups.get('Compilation/modules|a', 'e1'), undefined)
  await groups.write(false)
  await storage.save()
  const again = new EntryGroups({ storage, scope: 'w', serializer, logger, options: { groupSize: 10, maxAge: Infinity } })
  await again.restore()
  assert.deepEqual(await again.get('Compilation/modules|a', 'e2'), { v: 2 })
  assert.equal(again.groups.size, 1, 'the superseded group was dropped')
  await storage.close()
})
