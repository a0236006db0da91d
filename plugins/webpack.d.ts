/**
 * packcache/webpack: the disk layer of webpack 5's persistent cache on a
 * packcache store, replacing the one `cache: { type: 'filesystem' }` adds.
 *
 * Add the plugin; keep (or write) `cache: { type: 'filesystem', ... }`: the
 * plugin takes that config's `cacheDirectory`, `name`, `version`, `buildDependencies`,
 * `maxAge`, `idleTimeout`, `idleTimeoutForInitialStore` and `readonly`, and
 * turns the config into `{ type: 'memory' }` (webpack's in-memory layer stays;
 * this plugin is the layer below it). Options given to the plugin win.
 *
 * - Entries are checked against their etag, stored in groups (the entries of
 *   one store, split by kind) so shared objects stay shared, and deserialized
 *   a group at a time on the first `get` of one of its entries.
 * - Build dependencies are resolved by webpack's FileSystemInfo, as for its
 *   own cache, and checked on the next start with native fingerprints.
 * - Stores run when the compiler is idle (`idleTimeout`, 5 s the first time)
 *   and at shutdown; entries unused for `maxAge` are dropped.
 * - Several webpack processes may share a cache directory (a watch and a
 *   build): packcache's saves are atomic; the last index written wins and the
 *   other process's new entries are rebuilt, never read wrong.
 * - Child compilers share their parent's cache; each compiler of a
 *   multi-compiler config keeps its own entries (scope per cache `name`).
 * - webpack 5 only: under Rspack (no `compiler.webpack.util.serialization`)
 *   it logs a warning and stays off.
 */
export interface PackcacheWebpackPluginOptions {
  /** Directory of the store (default `<context>/node_modules/.cache/packcache-webpack`). */
  cacheDirectory?: string
  /** Cache name: separate entries per name (default `${compiler.name ?? 'default'}-${mode}`). */
  name?: string
  /** Entries of another version are not seen (webpack's `cache.version`). */
  version?: string
  /** Files, directories (ending in `/`) or modules whose change empties the cache (webpack's `cache.buildDependencies`). webpack's own `lib/` is always one. */
  buildDependencies?: Record<string, string[]>
  /** Entries unused for this many ms are dropped at the next store (default 60 days, as webpack). */
  maxAge?: number
  /** Idle time before a store (default 60 000 ms). */
  idleTimeout?: number
  /** Idle time before the first store of a process (default 5 000 ms). */
  idleTimeoutForInitialStore?: number
  /** Most entries per group (default 2 000). */
  groupSize?: number
  /** Codec of the store's packs (default `'zstd'`: the smallest disk; it decodes off the JS thread while webpack starts). */
  compression?: 'zstd' | 'lz4' | 'none'
  /** Read the cache, never write it. */
  readonly?: boolean
}

export declare class PackcacheWebpackPlugin {
  constructor(options?: PackcacheWebpackPluginOptions)
  apply(compiler: any): void
}
export default PackcacheWebpackPlugin
