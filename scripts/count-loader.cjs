// Counts the modules a webpack build really transforms (restored ones skip it).
module.exports = function (source, map) {
  globalThis.__bundlerRuns = (globalThis.__bundlerRuns ?? 0) + 1
  this.callback(null, source, map)
}
