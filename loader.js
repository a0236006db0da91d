// The package's entry point: the loader napi generates (index.js), with an
// error that says what to do when no prebuilt binary fits this machine.
'use strict'

const { napi } = require('./package.json')

/** napi's name of a Rust target triple: x86_64-unknown-linux-gnu -> linux-x64-gnu. */
function platformName(triple) {
  const [cpu, , os, abi] = triple.split('-')
  const arch = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm', riscv64gc: 'riscv64' }[cpu] ?? cpu
  if (triple.includes('apple-darwin')) return `darwin-${arch}`
  if (triple.includes('windows')) return `win32-${arch}-${triple.split('-').pop()}`
  return `${os}-${arch}${abi ? `-${abi}` : ''}`
}

/** The C library of a Linux machine: 'gnu', 'musl', or null elsewhere. */
function libc() {
  if (process.platform !== 'linux') return null
  try {
    const header = process.report?.getReport?.().header
    if (header?.glibcVersionRuntime) return 'gnu'
    return 'musl'
  } catch {
    return null
  }
}

function here() {
  const c = libc()
  const name = `${process.platform}-${process.arch}${c ? `-${c}` : process.platform === 'win32' ? '-msvc' : ''}`
  return { name, libc: c }
}

function explained(error) {
  const supported = napi.targets.map(platformName)
  const { name, libc: c } = here()
  if (supported.includes(name)) return error // napi's message (a missing optional package) fits
  const detected = `platform ${process.platform}, arch ${process.arch}${c ? `, libc ${c}` : ''}`
  const message =
    `packcache has no prebuilt binary for ${name} (${detected}). ` +
    `Prebuilt binaries exist for: ${supported.join(', ')}. ` +
    'To build one from source, install Rust (https://rustup.rs) and Node, then in a clone of ' +
    'https://github.com/packcache/packcache run `npm install && npm run build`, then ' +
    `require the packcache.${name}.node file it writes (the addon itself: PackStorage, hash).`
  const better = new Error(message, { cause: error })
  better.code = 'PACKCACHE_UNSUPPORTED_PLATFORM'
  return better
}

try {
  module.exports = require('./index.js')
} catch (error) {
  throw explained(error)
}
