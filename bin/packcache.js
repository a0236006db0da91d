#!/usr/bin/env node
// packcache: look into a cache directory from a terminal.
//
//   packcache stats <root> [--json]
//   packcache verify <root> [--json]      (a progress bar on stderr when it is a terminal)
//   packcache ls <root> [--version <v>] [<scope>] [--json]
//   packcache gc <root> [--expire <duration>] [--dry-run] [--json]
//
// Exit codes: 0 done; 1 `verify` found damage; 2 bad usage; 3 the cache
// could not be read (the error's code and message on stderr).
'use strict'

const { inspect, verify, verifyPack, listKeys, expireVersions } = require('../loader.js')

const USAGE = `usage:
  packcache stats <root> [--json]
  packcache verify <root> [--json]
  packcache ls <root> [--version <version>] [<scope>] [--json]
  packcache gc <root> [--expire <duration: 7d, 12h, 30m, 90s, 0>] [--dry-run] [--json]`

class UsageError extends Error {}

function parse(argv) {
  const [command, ...rest] = argv
  const flags = { json: false, dryRun: false, version: undefined, expire: '7d' }
  const positional = []
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]
    if (a === '--json') flags.json = true
    else if (a === '--dry-run') flags.dryRun = true
    else if (a === '--version' || a === '--expire') {
      if (i + 1 >= rest.length) throw new UsageError(`${a} needs a value`)
      flags[a.slice(2)] = rest[++i]
    } else if (a.startsWith('--')) throw new UsageError(`unknown option ${a}`)
    else positional.push(a)
  }
  if (!['stats', 'verify', 'ls', 'gc'].includes(command)) throw new UsageError(command ? `unknown command ${command}` : 'no command')
  const max = command === 'ls' ? 2 : 1
  if (positional.length < 1 || positional.length > max) throw new UsageError(`${command} takes ${max === 2 ? '<root> [<scope>]' : '<root>'}`)
  return { command, root: positional[0], scope: positional[1], flags }
}

const UNITS = { d: 86400e3, h: 3600e3, m: 60e3, s: 1e3, ms: 1 }
function duration(text) {
  const m = /^(\d+(?:\.\d+)?)(ms|d|h|m|s)?$/.exec(text)
  if (!m) throw new UsageError(`--expire ${text}: a duration such as 7d, 12h, 30m, 90s or 0`)
  return Number(m[1]) * UNITS[m[2] ?? 'ms']
}

function size(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let n = bytes
  let u = 0
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024
    u++
  }
  return u === 0 ? `${n} B` : `${n.toFixed(1)} ${units[u]}`
}

const when = (ms) => (ms == null ? 'never' : new Date(ms).toISOString())

async function stats(root, { json }) {
  const versions = await inspect(root)
  if (json) return console.log(JSON.stringify(versions, null, 2))
  if (versions.length === 0) return console.log(`${root}: no cache versions`)
  for (const v of versions) {
    const items = v.scopes.reduce((n, s) => n + s.items, 0)
    const raw = v.scopes.reduce((n, s) => n + s.rawBytes, 0)
    const packs = v.scopes.reduce((n, s) => n + s.packs, 0)
    console.log(`${v.dir}  version ${JSON.stringify(v.version ?? '?')}  generation ${v.generation}  last used ${when(v.lastUsed)}`)
    console.log(`  ${v.scopes.length} scopes, ${items} items, ${size(raw)} raw, ${size(v.diskBytes)} on disk, ${packs} packs`)
    if (v.error) console.log(`  manifest: ${v.error}`)
    for (const s of v.scopes) console.log(`    ${s.name}: ${s.items} items, ${size(s.rawBytes)} raw, ${size(s.diskBytes)} in ${s.packs} packs`)
  }
}

/** Pack by pack, with a progress bar on stderr (a terminal only). */
async function verifyWithProgress(root) {
  const versions = await inspect(root)
  const damaged = versions.filter((v) => v.error).map((v) => ({ dir: v.dir, scope: '', pack: 'MANIFEST', error: v.error }))
  const work = versions.flatMap((v) => v.scopes.flatMap((s) => s.packFiles.map((pack) => ({ dir: v.dir, scope: s.name, pack }))))
  const bar = (done) => {
    const width = 30
    const full = work.length === 0 ? width : Math.round((done / work.length) * width)
    process.stderr.write(`\r[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${done}/${work.length} packs`)
  }
  bar(0)
  for (const [n, item] of work.entries()) {
    const error = await verifyPack(root, item.dir, item.pack)
    if (error !== null) damaged.push({ ...item, error })
    bar(n + 1)
  }
  process.stderr.write('\n')
  return { packs: work.length, damaged }
}

async function check(root, { json }) {
  const report = process.stderr.isTTY && !json ? await verifyWithProgress(root) : await verify(root)
  if (json) console.log(JSON.stringify(report, null, 2))
  else {
    for (const d of report.damaged) console.log(`DAMAGED ${d.dir} scope ${JSON.stringify(d.scope)} ${d.pack}: ${d.error}`)
    console.log(`${report.packs} packs checked, ${report.damaged.length} damaged`)
  }
  return report.damaged.length > 0 ? 1 : 0
}

async function ls(root, scope, { json, version }) {
  const versions = await inspect(root)
  const chosen = version === undefined ? versions : versions.filter((v) => v.version === version)
  if (chosen.length !== 1) {
    const known = versions.map((v) => JSON.stringify(v.version ?? v.dir)).join(', ') || 'none'
    throw new UsageError(version === undefined ? `${versions.length} versions here (${known}): pick one with --version` : `no version ${JSON.stringify(version)} here (${known})`)
  }
  const v = chosen[0]
  if (scope === undefined) {
    if (json) return console.log(JSON.stringify(v.scopes, null, 2))
    for (const s of v.scopes) console.log(`${s.name}\t${s.items} items\t${size(s.rawBytes)}`)
    return
  }
  const keys = await listKeys(root, v.dir, scope)
  if (json) return console.log(JSON.stringify(keys.map(({ key, size }) => ({ key: key.toString('utf8'), size })), null, 2))
  for (const { key, size: bytes } of keys) console.log(`${key.toString('utf8')}\t${size(bytes)}`)
}

async function gc(root, { json, dryRun, expire }) {
  const dirs = await expireVersions(root, duration(expire), dryRun)
  if (json) return console.log(JSON.stringify({ dryRun, expired: dirs }, null, 2))
  for (const d of dirs) console.log(`${dryRun ? 'would delete' : 'deleted'} ${d}`)
  console.log(`${dirs.length} versions ${dryRun ? 'unused for longer than ' + expire : 'deleted'}`)
}

async function main(argv) {
  let args
  try {
    args = parse(argv)
  } catch (e) {
    console.error(`${e.message}\n${USAGE}`)
    return 2
  }
  const { command, root, scope, flags } = args
  try {
    if (command === 'stats') await stats(root, flags)
    else if (command === 'verify') return await check(root, flags)
    else if (command === 'ls') await ls(root, scope, flags)
    else await gc(root, flags)
    return 0
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${e.message}\n${USAGE}`)
      return 2
    }
    console.error(`packcache ${command}: ${e.code ?? 'ERROR'}: ${e.message}`)
    return 3
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
})
