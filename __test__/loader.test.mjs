import test from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const loader = fileURLToPath(new URL('../loader.js', import.meta.url))

/** Requires the package entry in a child that believes it runs on `platform`/`arch`. */
function requireAs(platform, arch) {
  const spoof = `Object.defineProperty(process, 'platform', { value: ${JSON.stringify(platform)} });` +
    `Object.defineProperty(process, 'arch', { value: ${JSON.stringify(arch)} });`
  const script = `${spoof} try { require(${JSON.stringify(loader)}); console.log('loaded') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, cause: String(e.cause) })) }`
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
  assert.equal(run.status, 0, run.stderr)
  return run.stdout.trim()
}

test('on a platform without a binary the error names it, lists the supported ones and says how to build', () => {
  for (const [platform, arch, name] of [['aix', 'ppc64', 'aix-ppc64'], ['linux', 'riscv64', 'linux-riscv64-gnu'], ['freebsd', 'x64', 'freebsd-x64']]) {
    const out = JSON.parse(requireAs(platform, arch))
    assert.equal(out.code, 'PACKCACHE_UNSUPPORTED_PLATFORM')
    assert.match(out.message, new RegExp(`no prebuilt binary for ${name} \\(platform ${platform}, arch ${arch}`))
    assert.match(out.message, /linux-x64-gnu/)
    assert.match(out.message, /darwin-arm64/)
    assert.match(out.message, /rustup\.rs/)
    assert.match(out.message, /npm run build/)
    assert.doesNotMatch(out.message, /npm has a bug/)
    assert.notEqual(out.cause, 'undefined') // napi's own error stays reachable
  }
})

test('on a supported platform the package entry loads the addon', () => {
  assert.equal(requireAs(process.platform, process.arch), 'loaded')
  const { PackStorage, hash } = createRequire(import.meta.url)(loader)
  assert.equal(typeof PackStorage, 'function')
  assert.equal(hash('x').length, 64)
})
