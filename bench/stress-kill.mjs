// kill -9 stress: N trials (default 60) of a child saving generations in a
// loop, SIGKILLed at a random moment; after each, the reopened cache must be
// exactly one whole generation, the last acknowledged one or the next.
//
//   node bench/stress-kill.mjs [trials]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { killTrial } from '../__test__/fixtures/kill-trial.mjs'

const trials = Number(process.argv[2] ?? 60)
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'packcache-kill-'))
let midSave = 0
let lastFound = 0
try {
  for (let i = 0; i < trials; i++) {
    const { lastAck, found } = await killTrial(root, 80 + Math.floor(Math.random() * 400))
    if (found === lastAck + 1) midSave++
    lastFound = found
  }
  console.log(`kill -9: ${trials} trials passed; ${midSave} killed after the commit but before the ack; reached generation ${lastFound}`)
} finally {
  fs.rmSync(root, { recursive: true, force: true })
}
