// End to end, as a user installs packcache: a real npm registry (verdaccio)
// on 127.0.0.1, the root package and this machine's platform package
// (the addon `npm run build` made) published to it, packcache installed
// from it into a fresh project with `cargo` off PATH, then used from CJS
// and ESM and type-checked with `tsc --strict`. Exit 0 when all of it works.
//
// Every platform package whose addon is at hand is published: the host's
// (made by `npm run build`) and those `scripts/cross-build.sh` made in
// target/platforms/ (linux-arm64-gnu, linux-x64-musl); the staged root pins
// exactly those, and npm installs the one that fits this machine.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import net from 'node:net'
import { spawn, execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'packcache-e2e-'))
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const log = (line) => console.log(`e2e: ${line}`)

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

async function startRegistry(port) {
  const storage = path.join(work, 'storage')
  const config = path.join(work, 'verdaccio.yaml')
  fs.writeFileSync(config, [
    `storage: ${storage}`,
    'auth:',
    '  htpasswd:',
    `    file: ${path.join(work, 'htpasswd')}`,
    '    max_users: 10',
    'uplinks: {}',
    'packages:',
    "  '**':",
    '    access: $all',
    '    publish: $authenticated',
    'log: { type: stdout, format: pretty, level: warn }',
    '',
  ].join('\n'))
  const bin = path.join(root, 'node_modules', 'verdaccio', 'bin', 'verdaccio')
  const child = spawn(process.execPath, [bin, '--config', config, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/-/ping`)).ok) return child
    } catch {}
    await new Promise((r) => setTimeout(r, 100))
  }
  child.kill()
  throw new Error(`verdaccio did not start:\n${output}`)
}

async function token(registry) {
  const res = await fetch(`${registry}/-/user/org.couchdb.user:e2e`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'e2e', password: 'e2e-password', type: 'user' }),
  })
  if (!res.ok) throw new Error(`registering a user: ${res.status} ${await res.text()}`)
  return (await res.json()).token
}

/** Each platform package with its addon copied in: the host's, and any cross-built ones. */
function stagePlatforms() {
  const found = []
  for (const dir of [root, path.join(root, 'target', 'platforms')]) {
    if (!fs.existsSync(dir)) continue
    for (const f of fs.readdirSync(dir).filter((f) => /^packcache\..+\.node$/.test(f))) found.push(path.join(dir, f))
  }
  const host = found.filter((f) => path.dirname(f) === root)
  if (host.length !== 1) throw new Error(`expected one built addon in ${root}, found ${host.length} (run npm run build)`)
  return found.map((file) => {
    const platform = path.basename(file).slice('packcache.'.length, -'.node'.length)
    const dir = path.join(work, `platform-${platform}`)
    fs.cpSync(path.join(root, 'npm', platform), dir, { recursive: true })
    fs.copyFileSync(file, path.join(dir, path.basename(file)))
    return { dir, platform, name: JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name, machine: elfMachine(file) }
  })
}

/** The ELF machine of an addon: x86-64 62, aarch64 183. */
function elfMachine(file) {
  const head = Buffer.alloc(20)
  const fd = fs.openSync(file, 'r')
  fs.readSync(fd, head, 0, 20, 0)
  fs.closeSync(fd)
  return head.readUInt16LE(18)
}

/** The root package as `npm pack` would ship it, pinning `platformName`. */
function stageRoot(platformNames) {
  const dir = path.join(work, 'root')
  fs.mkdirSync(dir)
  for (const file of pkg.files) fs.cpSync(path.join(root, file), path.join(dir, file), { recursive: true })
  const staged = { ...pkg, optionalDependencies: Object.fromEntries(platformNames.map((n) => [n, pkg.version])) }
  delete staged.devDependencies
  delete staged.scripts
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(staged, null, 2))
  return dir
}

/** PATH without any directory that holds cargo. */
function pathWithoutCargo() {
  return process.env.PATH.split(path.delimiter)
    .filter((d) => !fs.existsSync(path.join(d, 'cargo')))
    .join(path.delimiter)
}

const APP_CJS = `const assert = require('node:assert')
const { PackStorage, hash } = require('packcache')
;(async () => {
  const s = new PackStorage({ root: process.argv[2], version: 'e2e' })
  s.set('modules', 'a.js', Buffer.from('export default 1'))
  await s.save()
  const pairs = await new PackStorage({ root: process.argv[2], version: 'e2e' }).load('modules')
  assert.deepEqual(pairs.map(([k, v]) => [k.toString(), v.toString()]), [['a.js', 'export default 1']])
  assert.equal(hash('x').length, 64)
  const { PackcacheWebpackPlugin } = require('packcache/webpack')
  assert.equal(typeof new PackcacheWebpackPlugin().apply, 'function')
  assert.equal(typeof require('packcache/rollup').cacheTransforms, 'function')
  console.log('cjs ok (packcache, packcache/webpack, packcache/rollup)')
})()
`
const APP_ESM = `import assert from 'node:assert'
import { PackStorage } from 'packcache'
const s = new PackStorage({ root: process.argv[2], version: 'e2e' })
assert.equal((await s.get('modules', 'a.js')).toString(), 'export default 1')
s.set('modules', 'b.js', Buffer.from('2'))
await s.save()
assert.equal((await s.loadMany(['modules']))[0].length, 2)
const { cacheTransforms } = await import('packcache/rollup')
const plugins = cacheTransforms([{ name: 'id', transform: (code) => code }], { dir: process.argv[2] + '-rollup' })
assert.equal(plugins[0].name, 'packcache:transform-cache')
const { default: Plugin } = await import('packcache/webpack')
assert.equal(typeof Plugin, 'function')
console.log('esm ok (packcache, packcache/rollup, packcache/webpack)')
`
const APP_TS = `import { PackStorage, type PackcacheError } from 'packcache'
import { PackcacheWebpackPlugin } from 'packcache/webpack'
import { cacheTransforms, type TransformCacheStats } from 'packcache/rollup'
export const plugin = new PackcacheWebpackPlugin({ compression: 'zstd', maxAge: 86_400_000 })
export const plugins: unknown[] = cacheTransforms([], { packages: [], onStats: (s: TransformCacheStats) => s.hits })
export async function use(root: string): Promise<number> {
  const s = new PackStorage({ root, version: 'e2e', compression: 'lz4' })
  s.set('m', new Uint8Array([1]), Buffer.from('v'))
  try {
    return (await s.save()).generation
  } catch (e) {
    throw new Error((e as PackcacheError).code)
  }
}
`

const port = await freePort()
const registry = `http://127.0.0.1:${port}`
const server = await startRegistry(port)
try {
  log(`registry at ${registry}`)
  const npmrc = path.join(work, 'npmrc')
  fs.writeFileSync(npmrc, `registry=${registry}/\n//127.0.0.1:${port}/:_authToken=${await token(registry)}\n`)
  const npm = (args, cwd, env = process.env) =>
    execFileSync('npm', [...args, '--userconfig', npmrc, '--no-audit', '--no-fund'], { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  const platforms = stagePlatforms()
  for (const p of platforms) {
    const expected = p.platform.includes('arm64') ? 183 : 62
    if (p.machine !== expected) throw new Error(`${p.name}: ELF machine ${p.machine}, expected ${expected}`)
    npm(['publish'], p.dir)
    log(`published ${p.name}@${pkg.version} (ELF machine ${p.machine})`)
  }
  npm(['publish'], stageRoot(platforms.map((p) => p.name)))
  log(`published packcache@${pkg.version}`)

  const app = path.join(work, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  const env = { ...process.env, PATH: pathWithoutCargo() }
  try {
    execFileSync('cargo', ['--version'], { env, stdio: 'ignore' })
    throw new Error('cargo is still on PATH')
  } catch (e) {
    if (e.message === 'cargo is still on PATH') throw e
  }
  npm(['install', `packcache@${pkg.version}`], app, env)
  const installed = fs.readdirSync(path.join(app, 'node_modules')).filter((n) => n.startsWith('packcache'))
  log(`installed without cargo: ${installed.join(', ')}`)
  const hostPackage = platforms.find((p) => fs.existsSync(path.join(root, `packcache.${p.platform}.node`))).name
  if (installed.sort().join() !== ['packcache', hostPackage].sort().join()) {
    throw new Error(`npm installed ${installed.join(', ')}: expected packcache and ${hostPackage} only`)
  }
  fs.writeFileSync(path.join(app, 'cjs.js'), APP_CJS)
  fs.writeFileSync(path.join(app, 'esm.mjs'), APP_ESM)
  const cache = path.join(work, 'cache')
  log(execFileSync(process.execPath, ['cjs.js', cache], { cwd: app, env, encoding: 'utf8' }).trim())
  log(execFileSync(process.execPath, ['esm.mjs', cache], { cwd: app, env, encoding: 'utf8' }).trim())
  fs.writeFileSync(path.join(app, 'use.ts'), APP_TS)
  fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', types: ['node'], typeRoots: [path.join(root, 'node_modules', '@types')] },
    files: ['use.ts'],
  }))
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], { env, encoding: 'utf8' })
  log('use.ts type-checks under tsc --strict')
  const cli = execFileSync(path.join(app, 'node_modules', '.bin', 'packcache'), ['stats', cache, '--json'], { env, encoding: 'utf8' })
  log(`the packcache command: ${JSON.parse(cli).length} version(s) in the cache`)
} finally {
  server.kill()
  fs.rmSync(work, { recursive: true, force: true })
}
