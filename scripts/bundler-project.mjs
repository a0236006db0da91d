// A real project for end-to-end tests and benchmarks of the bundler plugins:
// the 641 ES modules of lodash-es (installed from npm) as the project's own
// source, built with babel (@babel/preset-env) by webpack 5 (babel-loader) or
// Rollup 4 (@rollup/plugin-babel), each build in a fresh process.
//
// The project's node_modules links to this repository's, except babel-loader
// and @rollup/plugin-babel, which are copied so that a test can change their
// version. `build()` runs scripts/bundler-build.cjs in the project.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const repo = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')
const COPIED = ['babel-loader', '@rollup/plugin-babel']

export function createProject(prefix = 'packcache-bundlers-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  fs.cpSync(path.join(repo, 'node_modules', 'lodash-es'), path.join(dir, 'src'), { recursive: true })
  fs.rmSync(path.join(dir, 'src', 'package.json'))
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  writeBabelConfig(dir, 'defaults')
  const modules = path.join(dir, 'node_modules')
  fs.mkdirSync(modules)
  for (const name of fs.readdirSync(path.join(repo, 'node_modules'))) {
    const from = path.join(repo, 'node_modules', name)
    if (name.startsWith('@')) {
      fs.mkdirSync(path.join(modules, name))
      for (const sub of fs.readdirSync(from)) link(path.join(from, sub), path.join(modules, name, sub), `${name}/${sub}`)
    } else {
      link(from, path.join(modules, name), name)
    }
  }
  return {
    dir,
    file: (rel) => path.join(dir, rel),
    build: (tool, mode, env) => build(dir, tool, mode, env),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  }
}

function link(from, to, name) {
  if (COPIED.includes(name)) fs.cpSync(from, to, { recursive: true, dereference: true })
  else fs.symlinkSync(from, to)
}

export function writeBabelConfig(dir, targets) {
  fs.writeFileSync(path.join(dir, 'babel.config.json'), JSON.stringify({ presets: [['@babel/preset-env', { targets }]] }))
}

/** Sets the version in a copied package's package.json. */
export function setPackageVersion(dir, name, version) {
  const file = path.join(dir, 'node_modules', name, 'package.json')
  const json = JSON.parse(fs.readFileSync(file, 'utf8'))
  json.version = version
  fs.writeFileSync(file, JSON.stringify(json, null, 2))
}

/**
 * One build in a fresh process: `tool` 'webpack' | 'rollup', `mode` 'none'
 * (no persistent cache), 'filesystem' (webpack's own) or 'packcache'.
 * Resolves with { ms, output, runs, log, code } (`output`: bundle text).
 */
export function build(dir, tool, mode, env = {}) {
  const script = path.join(repo, 'scripts', 'bundler-build.cjs')
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, tool, mode], {
      cwd: dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    if (env.KILL_AFTER_DONE_MS) {
      child.stdout.on('data', () => {
        if (out.includes('compiled\n') && !child.killed) {
          setTimeout(() => child.kill('SIGKILL'), Number(env.KILL_AFTER_DONE_MS))
        }
      })
    }
    child.on('error', reject)
    child.on('close', (code, signal) => {
      const result = out.split('\n').find((l) => l.startsWith('{'))
      if (signal) return resolve({ killed: signal, log: out + err })
      if (code !== 0 || !result) return reject(new Error(`${tool} ${mode} build failed (${code}):\n${out}\n${err}`))
      const parsed = JSON.parse(result)
      resolve({ ...parsed, output: fs.readFileSync(parsed.outputFile, 'utf8'), log: out + err })
    })
  })
}
