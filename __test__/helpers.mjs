import { createRequire } from 'node:module'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const require = createRequire(import.meta.url)
export const { PackStorage, hash } = require('../index.js')

export function tempRoot(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'packcache-test-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Pairs as a Map of hex(key) -> hex(value), for order-insensitive comparison. */
export function asMap(pairs) {
  return new Map(pairs.map(([k, v]) => [k.toString('hex'), v.toString('hex')]))
}

export function packFiles(root) {
  const out = []
  for (const dir of fs.readdirSync(root)) {
    const full = path.join(root, dir)
    if (!fs.statSync(full).isDirectory()) continue
    for (const f of fs.readdirSync(full)) if (f.endsWith('.pack')) out.push(path.join(full, f))
  }
  return out
}

/** Flips one byte near the end of the pack file that holds `text`. */
export function damagePackHolding(root, text) {
  const pack = packFiles(root).find((p) => fs.readFileSync(p).includes(Buffer.from(text)))
  const bytes = fs.readFileSync(pack)
  bytes[bytes.length - 33] ^= 1
  fs.writeFileSync(pack, bytes)
}

export function listTree(dir) {
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir, { recursive: true }).sort()
}
