// packcache/rollup with the real Rollup 4: what hits, what misses, and that a
// cached build's output is the uncached build's.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { rollup } from 'rollup'
import { cacheTransforms } from '../plugins/rollup.mjs'
import { tempRoot, packFiles } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { PackStorage } = require('../index.js')
const { Usage } = require('../plugins/shared.js')

/** A project: src/main.js importing a.js and b.js. */
function project(t) {
  const dir = tempRoot(t)
  const src = path.join(dir, 'src')
  fs.mkdirSync(src)
  fs.writeFileSync(path.join(src, 'main.js'), "import a from './a.js'\nimport b from './b.js'\nconsole.log(a, b)\n")
  fs.writeFileSync(path.join(src, 'a.js'), "export default 'alpha'\n")
  fs.writeFileSync(path.join(src, 'b.js'), "export default 'beta'\n")
  return { dir, src, cache: path.join(dir, 'cache'), file: (n) => path.join(src, n) }
}

/** A transform that upper-cases string literals and counts its runs by module. */
function shout(runs, { suffix = '', extra } = {}) {
  return {
    name: 'shout',
    transform(code, id) {
      runs.push(path.basename(id))
      extra?.call(this, id)
      return { code: code.replace(/'([a-z]+)'/g, (_, s) => `'${s.toUpperCase()}${suffix}'`), map: null }
    },
  }
}

async function build(p, plugins) {
  const warnings = []
  const bundle = await rollup({ input: p.file('main.js'), plugins, onwarn: (w) => warnings.push(w) })
  const { output } = await bundle.generate({ format: 'es' })
  const watchFiles = bundle.watchFiles
  await bundle.close()
  return { code: output[0].code, warnings, watchFiles }
}

const cached = (p, plugins, options = {}) =>
  cacheTransforms(plugins, { dir: p.cache, defaultDependencies: false, ...options })

test('unchanged_modules_hit_after_a_restart_with_identical_output', async (t) => {
  const p = project(t)
  const plain = await build(p, [shout([])])
  const runs = []
  let stats
  const first = await build(p, cached(p, [shout(runs)], { onStats: (s) => (stats = s) }))
  assert.deepEqual(runs.sort(), ['a.js', 'b.js', 'main.js'])
  assert.deepEqual([stats.misses, stats.stored, stats.hits], [3, 3, 0])
  runs.length = 0
  const second = await build(p, cached(p, [shout(runs)], { onStats: (s) => (stats = s) }))
  assert.deepEqual(runs, [], 'no transform ran')
  assert.deepEqual([stats.hits, stats.misses], [3, 0])
  assert.equal(first.code, plain.code)
  assert.equal(second.code, plain.code)
  assert.match(second.code, /'ALPHA'/)
})

test('edited_module_misses_alone', async (t) => {
  const p = project(t)
  await build(p, cached(p, [shout([])]))
  fs.writeFileSync(p.file('a.js'), "export default 'gamma'\n")
  const runs = []
  const out = await build(p, cached(p, [shout(runs)]))
  assert.deepEqual(runs, ['a.js'])
  assert.match(out.code, /'GAMMA'/)
})

test('changed_plugin_options_version_or_dependency_file_miss', async (t) => {
  const p = project(t)
  const dep = path.join(p.dir, 'shout.config.json')
  fs.writeFileSync(dep, '{"loud":true}')
  const base = { pluginOptions: { shout: { suffix: '' } }, dependencies: [dep] }
  await build(p, cached(p, [shout([])], base))
  const runsFor = async (plugins, options) => {
    const runs = []
    await build(p, cached(p, plugins(runs), options))
    return runs.length
  }
  assert.equal(await runsFor((r) => [shout(r)], base), 0, 'same everything: all hit')
  assert.equal(await runsFor((r) => [shout(r, { suffix: '!' })], { ...base, pluginOptions: { shout: { suffix: '!' } } }), 3)
  assert.equal(await runsFor((r) => [{ ...shout(r), version: '2.0.0' }], base), 3, 'plugin version')
  fs.writeFileSync(dep, '{"loud":false}')
  assert.equal(await runsFor((r) => [shout(r)], base), 3, 'dependency file content')
  // A package's version, through its package.json.
  const pkgDir = path.join(p.dir, 'node_modules', 'shout-plugin')
  fs.mkdirSync(pkgDir, { recursive: true })
  fs.writeFileSync(path.join(pkgDir, 'package.json'), '{"name":"shout-plugin","version":"1.0.0","main":"index.js"}')
  fs.writeFileSync(path.join(pkgDir, 'index.js'), '')
  const cwd = process.cwd()
  process.chdir(p.dir)
  t.after(() => process.chdir(cwd))
  const withPkg = { ...base, packages: ['shout-plugin'] }
  assert.equal(await runsFor((r) => [shout(r)], withPkg), 3)
  assert.equal(await runsFor((r) => [shout(r)], withPkg), 0)
  fs.writeFileSync(path.join(pkgDir, 'package.json'), '{"name":"shout-plugin","version":"1.0.1","main":"index.js"}')
  assert.equal(await runsFor((r) => [shout(r)], withPkg), 3, 'package version')
  process.chdir(cwd)
  assert.throws(() => cacheTransforms([], { packages: ['no-such-package-here'] }), /no-such-package-here/)
  // [factory, options]: the options given to the factory key the entries.
  const factory = (runs) => (opts) => shout(runs, opts)
  assert.equal(await runsFor((r) => [[factory(r), { suffix: '?' }]], {}), 3)
  assert.equal(await runsFor((r) => [[factory(r), { suffix: '?' }]], {}), 0)
  const out = await build(p, cached(p, [[factory([]), { suffix: '#' }]]))
  assert.match(out.code, /'ALPHA#'/)
})

test('watched_file_change_makes_the_entry_stale_and_calls_are_replayed', async (t) => {
  const p = project(t)
  const data = path.join(p.dir, 'data.txt')
  fs.writeFileSync(data, 'one')
  const reader = (runs) => ({
    name: 'reader',
    transform(code, id) {
      if (!id.endsWith('a.js')) return null
      runs.push('a.js')
      this.addWatchFile(data)
      return code.replace('alpha', fs.readFileSync(data, 'utf8'))
    },
  })
  await build(p, cached(p, [reader([])]))
  let runs = []
  let stats
  const hit = await build(p, cached(p, [reader(runs)], { onStats: (s) => (stats = s) }))
  assert.deepEqual(runs, [])
  assert.ok(hit.watchFiles.includes(data), 'addWatchFile replayed on a hit')
  assert.match(hit.code, /'one'/)
  fs.writeFileSync(data, 'two')
  runs = []
  const stale = await build(p, cached(p, [reader(runs)], { onStats: (s) => (stats = s) }))
  assert.deepEqual(runs, ['a.js'])
  assert.equal(stats.stale, 1)
  assert.match(stale.code, /'two'/)
})

test('result_with_data_json_cannot_hold_is_not_cached', async (t) => {
  const p = project(t)
  const odd = (runs) => ({
    name: 'odd',
    transform(code, id) {
      runs.push(path.basename(id))
      if (id.endsWith('a.js')) return { code, meta: { odd: { seen: new Set([1]) } } }
      if (id.endsWith('b.js')) return { code, meta: { odd: { check: () => true } } }
      return { code, meta: { odd: { plain: [1, 'two', null] } } }
    },
  })
  let stats
  await build(p, cached(p, [odd([])], { onStats: (s) => (stats = s) }))
  assert.deepEqual([stats.stored, stats.uncacheable], [1, 2])
  const runs = []
  await build(p, cached(p, [odd(runs)]))
  assert.deepEqual(runs.sort(), ['a.js', 'b.js'])
})

test('hook_that_emits_a_file_is_not_cached', async (t) => {
  const p = project(t)
  const emitting = (runs) =>
    shout(runs, { extra(id) { if (id.endsWith('b.js')) this.emitFile({ type: 'asset', fileName: 'b.txt', source: 'b' }) } })
  let stats
  await build(p, cached(p, [emitting([])], { onStats: (s) => (stats = s) }))
  assert.deepEqual([stats.stored, stats.uncacheable], [2, 1])
  const runs = []
  await build(p, cached(p, [emitting(runs)]))
  assert.deepEqual(runs, ['b.js'])
})

test('warnings_of_a_cached_transform_are_replayed', async (t) => {
  const p = project(t)
  const warner = (runs) => shout(runs, { extra(id) { if (id.endsWith('a.js')) this.warn('a.js looks odd') } })
  const first = await build(p, cached(p, [warner([])]))
  const runs = []
  const second = await build(p, cached(p, [warner(runs)]))
  assert.deepEqual(runs, [])
  const messages = (r) => r.warnings.map((w) => w.message).filter((m) => m.includes('looks odd'))
  assert.deepEqual(messages(second), messages(first))
  assert.equal(messages(second).length, 1)
})

test('id_independent_plugin_hits_for_a_moved_file', async (t) => {
  const p = project(t)
  await build(p, cached(p, [shout([])], { idIndependent: ['shout'] }))
  fs.renameSync(p.file('b.js'), p.file('c.js'))
  fs.writeFileSync(p.file('main.js'), "import a from './a.js'\nimport b from './c.js'\nconsole.log(a, b)\n")
  const runs = []
  await build(p, cached(p, [shout(runs)], { idIndependent: ['shout'] }))
  assert.deepEqual(runs, ['main.js'], 'c.js has b.js content: a hit')
  const byId = []
  await build(p, cached(p, [shout(byId)]))
  assert.deepEqual(byId.sort(), ['a.js', 'c.js', 'main.js'], 'keyed by id otherwise')
})

test('damaged_cache_warns_and_builds_correct_output', async (t) => {
  const p = project(t)
  const plain = await build(p, [shout([])])
  await build(p, cached(p, [shout([])]))
  for (const pack of packFiles(p.cache)) {
    const bytes = fs.readFileSync(pack)
    bytes.fill(0x55, 64)
    fs.writeFileSync(pack, bytes)
  }
  const out = await build(p, cached(p, [shout([])]))
  assert.equal(out.code, plain.code)
  assert.ok(out.warnings.some((w) => /transform cache unavailable.*PACKCACHE_CORRUPT/.test(w.message)), out.warnings.map((w) => w.message).join('\n'))
  const runs = []
  const healed = await build(p, cached(p, [shout(runs)]))
  assert.deepEqual(runs, [], 'the damaged build stored its entries again')
  assert.equal(healed.code, plain.code)
  assert.deepEqual(healed.warnings, [])
})

test('entries_unused_for_max_age_are_dropped', async (t) => {
  const root = tempRoot(t)
  const storage = new PackStorage({ root, version: 'v' })
  const usage = new Usage(storage, 'transforms')
  const DAY = 86_400_000
  const t0 = Date.UTC(2026, 0, 1)
  for (const k of ['old', 'kept']) {
    storage.set('transforms', k, Buffer.from(k))
    usage.touch(Buffer.from(k))
  }
  assert.equal(await usage.flush(t0), 2)
  await storage.save()
  usage.touch(Buffer.from('kept'))
  assert.equal(await usage.flush(t0 + 5 * DAY), 1)
  usage.touch(Buffer.from('kept'))
  assert.equal(await usage.flush(t0 + 5 * DAY + 60_000), 0, 'a time less than an hour old is not written again')
  assert.equal(await usage.prune(7 * DAY, t0 + 8 * DAY), 1)
  await storage.save()
  usage.touch(Buffer.from('kept'))
  await usage.flush(t0 + 8 * DAY)
  assert.equal(await usage.prune(1, t0 + 30 * DAY), 1, 'maxAge shorter than the hour between prunes')
  storage.set('transforms', 'late', Buffer.from('late'))
  usage.touch(Buffer.from('late'))
  await usage.flush(t0)
  assert.equal(await usage.prune(7 * DAY, t0 + 30 * DAY + 60_000), 0, 'pruned a minute ago: not again yet')
  storage.remove('transforms', 'late')
  storage.remove('transforms.used', 'late')
  storage.set('transforms', 'kept', Buffer.from('kept'))
  usage.touch(Buffer.from('kept'))
  await usage.flush(t0 + 30 * DAY)
  assert.deepEqual((await storage.keys('transforms')).map(String), ['kept'])
  assert.deepEqual((await storage.keys('transforms.used')).map(String), ['kept'])
  await storage.close()
})

test('dev_server_style_transforms_are_saved_after_a_quiet_spell', async (t) => {
  const p = project(t)
  const [controller, wrapped] = cacheTransforms([shout([])], { dir: p.cache, defaultDependencies: false })
  const warnings = []
  const ctx = { warn: (w) => warnings.push(w), addWatchFile() {}, parse() {} }
  await controller.buildStart.call(ctx)
  // A dev server: transforms on request, no buildEnd until it closes.
  const out = await wrapped.transform.call(ctx, "export default 'dev'", p.file('dev.js'))
  assert.match(out.code, /'DEV'/)
  await new Promise((resolve) => setTimeout(resolve, 5_600))
  const storage = new PackStorage({ root: p.cache, version: 'packcache-transform-1:', readonly: true })
  assert.equal((await storage.keys('transforms')).length, 1, 'saved without a buildEnd')
  await storage.close()
  await controller.closeWatcher()
  assert.deepEqual(warnings, [])
})

test('unusable_cache_directory_warns_and_builds_uncached', async (t) => {
  const p = project(t)
  const plain = await build(p, [shout([])])
  const blocker = path.join(p.dir, 'not-a-dir')
  fs.writeFileSync(blocker, 'a file where the cache directory should be')
  const runs = []
  const out = await build(p, cacheTransforms([shout(runs)], { dir: path.join(blocker, 'cache'), defaultDependencies: false }))
  assert.equal(out.code, plain.code)
  assert.equal(runs.length, 3)
  assert.ok(out.warnings.some((w) => /transform cache unavailable.*PACKCACHE_IO/.test(w.message)), out.warnings.map((w) => w.message).join('\n'))
})
