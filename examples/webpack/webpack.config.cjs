// webpack 5 with packcache as its persistent cache: keep the usual
// `cache: { type: 'filesystem' }` settings and add the plugin, which takes
// them over (the in-memory layer stays webpack's).
const path = require('node:path')
const { PackcacheWebpackPlugin } = require('packcache/webpack')

module.exports = {
  mode: 'production',
  context: process.cwd(),
  entry: './src/lodash.js',
  output: { path: path.resolve('dist'), filename: 'main.js' },
  devtool: 'source-map',
  module: {
    rules: [{ test: /\.js$/, include: path.resolve('src'), use: 'babel-loader' }],
  },
  cache: {
    type: 'filesystem',
    cacheDirectory: path.resolve('.cache'),
    buildDependencies: { config: [__filename, path.resolve('babel.config.json')] },
  },
  infrastructureLogging: { level: 'log', debug: false },
  plugins: [new PackcacheWebpackPlugin()],
}
