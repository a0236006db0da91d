// The two bundler examples, each built twice (cold, then warm) in fresh
// processes on a real source tree: the 641 ES modules of lodash-es, with
// babel. Run: npm run example:bundlers
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createProject, repo } from '../scripts/bundler-project.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const bin = (pkg, file) => path.join(repo, 'node_modules', pkg, file)

/** The lodash-es project the end-to-end tests build, plus packcache resolvable as an installed app sees it. */
function project(name) {
  const p = createProject(`packcache-example-${name}-`)
  fs.symlinkSync(repo, path.join(p.dir, 'node_modules', 'packcache'))
  return p
}

function timed(label, args, cwd) {
  const started = performance.now()
  const run = spawnSync(process.execPath, args, { cwd, encoding: 'utf8' })
  const ms = Math.round(performance.now() - started)
  const out = run.stdout + run.stderr
  if (run.status !== 0) throw new Error(`${label} failed:\n${out}`)
  const notes = out.split('\n').filter((l) => /PackcacheWebpackPlugin|transform cache/.test(l)).map((l) => l.trim())
  console.log(`${label}: ${ms} ms${notes.length ? `\n  ${notes.join('\n  ')}` : ''}`)
  return ms
}

const runs = [
  ['webpack', 'webpack/webpack.config.cjs', (config) => [bin('webpack', 'bin/webpack.js'), '--config', config]],
  ['vite', 'vite/vite.config.mjs', (config) => [bin('vite', 'bin/vite.js'), 'build', '--config', config]],
]
for (const [name, config, command] of runs) {
  const p = project(name)
  const dir = p.dir
  try {
    const file = path.join(dir, path.basename(config))
    fs.copyFileSync(path.join(here, config), file)
    const cold = timed(`${name} cold`, command(file), dir)
    const warm = timed(`${name} warm`, command(file), dir)
    const bundle = fs.readdirSync(path.join(dir, 'dist')).filter((f) => /\.m?js$/.test(f))
    console.log(`${name}: warm/cold ${(warm / cold).toFixed(2)}; bundle ${bundle.join(', ')}\n`)
  } finally {
    p.remove()
  }
}
