// Vite (or Rollup) with babel run through packcache's transform cache:
// unchanged modules skip babel on every later build.
import path from 'node:path'
import { defineConfig } from 'vite'
import { babel } from '@rollup/plugin-babel'
import { cacheTransforms } from 'packcache/rollup'

export default defineConfig({
  logLevel: 'warn',
  plugins: cacheTransforms([babel({ babelHelpers: 'bundled' })], {
    dir: path.resolve('.cache'),
    // Their versions key the entries: an upgrade misses instead of serving stale output.
    packages: ['@rollup/plugin-babel', '@babel/core', '@babel/preset-env', 'vite'],
    onStats: (s) => console.log(`  transform cache: ${s.hits} hits, ${s.misses} misses`),
  }),
  build: {
    outDir: 'dist',
    minify: false,
    lib: { entry: 'src/lodash.js', formats: ['es'], fileName: 'lodash' },
  },
})
