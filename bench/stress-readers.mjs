// Readers under fast saves: one process saves as fast as it can (every save
// deleting the packs of the one before) while two processes load, loadMany,
// loadColumns and get in a loop, for N seconds (default 60). Every read must
// succeed with bytes that were written for its key.
//
//   node bench/stress-readers.mjs [seconds]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const seconds = process.argv[2] ?? '60'
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'packcache-readers-'))
const fixture = fileURLToPath(new URL('../__test__/fixtures/readers-under-saves.mjs', import.meta.url))
try {
  const result = JSON.parse(execFileSync(process.execPath, [fixture, root, seconds], { encoding: 'utf8' }))
  console.log(`readers under saves, ${seconds} s: ${result.saves} saves, ${result.reads} reads, ${result.errors} errors, ${result.wrong} wrong values`)
  for (const e of result.firstErrors) console.log(`  ${e}`)
  if (result.errors > 0 || result.wrong > 0) process.exitCode = 1
} finally {
  fs.rmSync(root, { recursive: true, force: true })
}
