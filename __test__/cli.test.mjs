import test from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { PackStorage, hash, tempRoot, damagePackHolding } from './helpers.mjs'

const cli = fileURLToPath(new URL('../bin/packcache.js', import.meta.url))
const packcache = (...args) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' })
const json = (run) => {
  assert.equal(run.status, 0, run.stderr)
  return JSON.parse(run.stdout)
}

async function twoVersions(t, compression = 'lz4') {
  const root = tempRoot(t)
  const a = new PackStorage({ root, version: 'app@1', compression })
  for (let i = 0; i < 30; i++) a.set('modules', `src/m${i}.js`, Buffer.from(`export const m${i} = ${i};\n`.repeat(20)))
  a.set('assets', 'logo.svg', Buffer.from('<svg/>'))
  await a.save()
  a.remove('modules', 'src/m0.js')
  await a.save()
  await a.close()
  const b = new PackStorage({ root, version: 'app@2' })
  b.set('modules', 'x', Buffer.from('y'))
  await b.save()
  await b.close()
  return root
}

test('packcache stats reports every version with its scopes, items, bytes and generation', async (t) => {
  const root = await twoVersions(t)
  const versions = json(packcache('stats', root, '--json'))
  assert.deepEqual(versions.map((v) => v.version).sort(), ['app@1', 'app@2'])
  const one = versions.find((v) => v.version === 'app@1')
  assert.equal(one.generation, 2)
  assert.deepEqual(one.scopes.map((s) => [s.name, s.items]), [['assets', 1], ['modules', 29]])
  const modules = one.scopes.find((s) => s.name === 'modules')
  assert.equal(modules.rawBytes, Array.from({ length: 29 }, (_, k) => `src/m${k + 1}.js`.length + `export const m${k + 1} = ${k + 1};\n`.repeat(20).length).reduce((a, b) => a + b))
  assert.ok(one.diskBytes > 0 && one.lastUsed <= Date.now())
  assert.match(packcache('stats', root).stdout, /version "app@1"  generation 2/)
})

test('packcache verify exits 0 on a sound cache and 1 naming the scope and pack of a damaged one', async (t) => {
  const root = await twoVersions(t, 'none') // values stored as they are: the damage can aim at one
  const clean = packcache('verify', root)
  assert.equal(clean.status, 0, clean.stderr)
  assert.match(clean.stdout, /^\d+ packs checked, 0 damaged$/m)
  damagePackHolding(root, 'export const m5 = 5;')
  const bad = packcache('verify', root, '--json')
  assert.equal(bad.status, 1)
  const report = JSON.parse(bad.stdout)
  assert.equal(report.damaged.length, 1)
  assert.equal(report.damaged[0].scope, 'modules')
  assert.match(report.damaged[0].pack, /^[0-9a-f]{32}\.pack$/)
  assert.match(packcache('verify', root).stdout, /DAMAGED pc3-[0-9a-f]{32} scope "modules" [0-9a-f]{32}\.pack/)
})

test('packcache ls lists the scopes of a version and the keys of a scope with their sizes', async (t) => {
  const root = await twoVersions(t)
  const ambiguous = packcache('ls', root)
  assert.equal(ambiguous.status, 2)
  assert.match(ambiguous.stderr, /2 versions here .*--version/)
  const scopes = json(packcache('ls', root, '--version', 'app@1', '--json'))
  assert.deepEqual(scopes.map((s) => s.name), ['assets', 'modules'])
  const keys = json(packcache('ls', root, '--version', 'app@1', 'modules', '--json'))
  assert.equal(keys.length, 29)
  assert.ok(!keys.some((k) => k.key === 'src/m0.js'), 'a removed key is not listed')
  assert.deepEqual(keys.find((k) => k.key === 'src/m7.js'), { key: 'src/m7.js', size: 'export const m7 = 7;\n'.length * 20 })
  assert.equal(packcache('ls', root, '--version', 'app@3').status, 2)
})

test('packcache gc deletes versions unused for longer than --expire, and --dry-run only lists them', async (t) => {
  const root = await twoVersions(t)
  const old = path.join(root, `pc3-${hash('app@1').slice(0, 32)}`)
  const dayAgo = new Date(Date.now() - 86400e3)
  fs.utimesSync(path.join(old, 'MANIFEST'), dayAgo, dayAgo)
  assert.deepEqual(json(packcache('gc', root, '--expire', '1h', '--dry-run', '--json')), { dryRun: true, expired: [path.basename(old)] })
  assert.ok(fs.existsSync(old))
  assert.deepEqual(json(packcache('gc', root, '--expire', '1h', '--json')), { dryRun: false, expired: [path.basename(old)] })
  assert.ok(!fs.existsSync(old))
  assert.deepEqual(json(packcache('stats', root, '--json')).map((v) => v.version), ['app@2'])
  assert.equal(packcache('gc', root, '--expire', 'soon').status, 2)
})

test('packcache on a missing root or with bad usage fails with a clear message and exit code', (t) => {
  const missing = packcache('stats', path.join(tempRoot(t), 'nope'))
  assert.equal(missing.status, 3)
  assert.match(missing.stderr, /PACKCACHE_IO: .*not a cache directory/)
  for (const args of [[], ['frobnicate', '/tmp'], ['stats'], ['stats', '/a', '/b'], ['stats', '/a', '--colour']]) {
    const run = packcache(...args)
    assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`)
    assert.match(run.stderr, /usage:/)
  }
})

test('packcache verify on a terminal draws a progress bar on stderr and still names the damage', async (t) => {
  const root = await twoVersions(t, 'none')
  // `script` runs the command with a pseudo-terminal as its stdio.
  const onTty = () => spawnSync('script', ['-qec', `${process.execPath} ${cli} verify ${root}`, '/dev/null'], { encoding: 'utf8' })
  const clean = onTty()
  assert.equal(clean.status, 0, clean.stdout)
  const packs = json(packcache('stats', root, '--json')).reduce((n, v) => n + v.scopes.reduce((m, s) => m + s.packFiles.length, 0), 0)
  assert.match(clean.stdout, new RegExp(`\\[#{30}\\] ${packs}/${packs} packs`))
  assert.match(clean.stdout, new RegExp(`${packs} packs checked, 0 damaged`))
  damagePackHolding(root, 'export const m5 = 5;')
  const bad = onTty()
  assert.equal(bad.status, 1, bad.stdout)
  assert.match(bad.stdout, /DAMAGED pc3-[0-9a-f]{32} scope "modules" [0-9a-f]{32}\.pack/)
})
