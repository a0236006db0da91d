// One build of a scripts/bundler-project.mjs project, run in its directory:
//   node bundler-build.cjs webpack|rollup|vite none|filesystem|packcache|bare
// ('bare', Rollup and Vite only: no babel at all, the bundler's own floor)
// Env: CACHE_DIR (default .cache-<tool>-<mode>), OUT_DIR (default dist-<tool>-<mode>).
// Prints "compiled" when the bundle is written, then one JSON line:
// { ms, outputFile, runs } (`runs`: transforms/loaders that ran, not restored).
'use strict'

const started = performance.now()
const path = require('node:path')
const [tool, mode] = process.argv.slice(2)
const cwd = process.cwd()
const cacheDir = process.env.CACHE_DIR ?? path.join(cwd, `.cache-${tool}-${mode}`)
const outDir = process.env.OUT_DIR ?? path.join(cwd, `dist-${tool}-${mode}`)
const fromProject = (id) => require(require.resolve(id, { paths: [cwd] }))
globalThis.__bundlerRuns = 0

function finish(outputFile, runs) {
  console.log(JSON.stringify({ ms: Math.round(performance.now() - started), outputFile, runs }))
}

/** @rollup/plugin-babel with its transform runs counted. */
function countedBabel(babel) {
  const plugin = babel({ babelHelpers: 'bundled' })
  const { handler } = plugin.transform
  const counting = function (...args) {
    globalThis.__bundlerRuns++
    return handler.apply(this, args)
  }
  return { ...plugin, transform: { ...plugin.transform, handler: counting } }
}

function webpackBuild() {
  const webpack = fromProject('webpack')
  const { PackcacheWebpackPlugin } = require('../plugins/webpack.js')
  const buildDependencies = { config: [__filename, path.join(cwd, 'babel.config.json')] }
  const cache = mode === 'none' ? false : { type: 'filesystem', cacheDirectory: cacheDir, buildDependencies }
  const compiler = webpack({
    mode: 'production',
    context: cwd,
    entry: './src/lodash.js',
    output: { path: outDir, filename: 'main.js', library: { type: 'module' } },
    experiments: { outputModule: true },
    devtool: 'source-map',
    optimization: { minimize: false },
    infrastructureLogging: { level: process.env.WEBPACK_LOG ?? 'warn' },
    module: {
      rules: [
        {
          test: /\.js$/,
          include: path.join(cwd, 'src'),
          use: [path.join(__dirname, 'count-loader.cjs'), require.resolve('babel-loader', { paths: [cwd] })],
        },
      ],
    },
    cache,
    plugins: mode === 'packcache' ? [new PackcacheWebpackPlugin()] : [],
  })
  compiler.hooks.done.tap('bundler-build', () => console.log('compiled'))
  compiler.run((err, stats) => {
    if (err || stats.hasErrors()) {
      console.error(err ?? stats.toString('errors-only'))
      process.exit(1)
    }
    compiler.close((closeErr) => {
      if (closeErr) throw closeErr
      finish(path.join(outDir, 'main.js'), globalThis.__bundlerRuns)
    })
  })
}

async function rollupBuild() {
  const { rollup } = fromProject('rollup')
  const { babel } = fromProject('@rollup/plugin-babel')
  const { cacheTransforms } = require('../plugins/rollup.js')
  const counted = countedBabel(babel)
  const packages = ['@rollup/plugin-babel', '@babel/core', '@babel/preset-env']
  const plugins =
    mode === 'packcache' ? cacheTransforms([counted], { dir: cacheDir, packages }) : mode === 'bare' ? [] : [counted]
  const bundle = await rollup({ input: path.join(cwd, 'src', 'lodash.js'), plugins })
  await bundle.write({ dir: outDir, format: 'es', sourcemap: true })
  console.log('compiled')
  await bundle.close()
  finish(path.join(outDir, 'lodash.js'), globalThis.__bundlerRuns)
}

async function viteBuild() {
  const { build } = await import(require.resolve('vite', { paths: [cwd] }))
  const { babel } = fromProject('@rollup/plugin-babel')
  const { cacheTransforms } = require('../plugins/rollup.js')
  const counted = countedBabel(babel)
  const packages = ['@rollup/plugin-babel', '@babel/core', '@babel/preset-env', 'vite']
  await build({
    configFile: false,
    root: cwd,
    logLevel: 'warn',
    plugins:
      mode === 'packcache' ? cacheTransforms([counted], { dir: cacheDir, packages }) : mode === 'bare' ? [] : [counted],
    build: {
      outDir,
      emptyOutDir: true,
      minify: false,
      sourcemap: true,
      lib: { entry: path.join(cwd, 'src', 'lodash.js'), formats: ['es'], fileName: 'lodash' },
    },
  })
  console.log('compiled')
  finish(path.join(outDir, 'lodash.mjs'), globalThis.__bundlerRuns)
}

const builds = { webpack: webpackBuild, rollup: rollupBuild, vite: viteBuild }
if (!builds[tool]) throw new Error(`unknown tool ${tool}`)
Promise.resolve(builds[tool]()).catch((e) => {
  console.error(e)
  process.exit(1)
})
