/**
 * packcache/rollup: a content-addressed cache for plugins' `transform` hooks,
 * for Rollup 4, Vite 6-8 and Rolldown.
 *
 * An entry's key is blake3 of: the plugin's name, `version` and hook source,
 * its options (see `pluginOptions`), the contents of the dependency files
 * (`dependencies`, and the package.json of each of `packages`),
 * the module id (unless the plugin is listed in `idIndependent`) and the
 * code. Unchanged code hits after any rebuild or restart; a changed option,
 * plugin or dependency file misses. The stored value holds the result's
 * code, map and meta (not `ast`: Rollup parses again).
 *
 * What a cached hook may do with its context: `addWatchFile` (the files
 * are fingerprinted with the entry; a hit is valid only while none changed,
 * and the calls are replayed), `warn` (replayed), `parse`, `error`, `meta`,
 * `debug`, `info`. A call that used anything else (`emitFile`, `resolve`,
 * `load`, `getModuleInfo`, `getCombinedSourcemap`, …) is not stored. Files a
 * hook reads on its own (a babel config, a browserslist) must be named in
 * `dependencies` (common ones are by default). `load` hooks are not cached.
 */

/** What `cacheTransforms` accepts per plugin. */
export type TransformPluginInput =
  | { name?: string; transform?: unknown; [hook: string]: unknown }
  | [factory: (options: any) => any, options?: unknown]
  | null
  | undefined
  | false
  | TransformPluginInput[]

export interface TransformCacheStats {
  /** Transforms answered from the cache. */
  hits: number
  /** Transforms run (no entry, or a stale one). */
  misses: number
  /** New entries written. */
  stored: number
  /** Results not stored (the hook used an unsupported context member, or returned something not storable). */
  uncacheable: number
  /** Entries found whose watched files changed since. */
  stale: number
  /** Entries dropped for being unused longer than `maxAge`. */
  expired: number
  /** Pack bytes written by the save at the end of the build. */
  savedBytes: number
}

export interface CacheTransformsOptions {
  /** Cache directory (default `node_modules/.cache/packcache-transforms`). */
  dir?: string
  /** Extra salt: entries of another version are not seen. */
  version?: string
  /** Scope name in the store (default `'transforms'`). */
  scope?: string
  /** Entries unused for this many ms are dropped at the end of a build (default 7 days; `Infinity` keeps all). */
  maxAge?: number
  /**
   * Files whose content keys every entry, added to the defaults (package.json, lockfiles,
   * babel.config.*, .babelrc*, .browserslistrc, tsconfig.json, relative to the working directory).
   */
  dependencies?: string[]
  /**
   * Packages (resolved from the working directory) whose package.json keys every entry:
   * list the plugin's packages (`['@rollup/plugin-babel', '@babel/core', '@babel/preset-env']`)
   * so an upgrade of any of them misses. A name that does not resolve throws.
   */
  packages?: string[]
  /** `false` drops the default dependency files. */
  defaultDependencies?: boolean
  /**
   * Each plugin's options by plugin name (any JSON-like value; functions count by source).
   * A plugin object does not expose the options it was made with: without this (or the
   * `[factory, options]` form), changing them does not change its keys.
   */
  pluginOptions?: Record<string, unknown>
  /** Names of plugins whose output never depends on the module id: a moved or copied file hits. */
  idIndependent?: string[]
  /** Called after each build's save with that build's figures. */
  onStats?: (stats: TransformCacheStats) => void
}

/**
 * Wraps the `transform` hooks of `plugins` in a persistent cache; returns the
 * plugins to use instead (a controller plugin first: it opens the store at
 * `buildStart` and saves at `buildEnd`). Cache failures never fail a build:
 * one warning, then the hooks run uncached.
 */
export declare function cacheTransforms(plugins: TransformPluginInput[], options?: CacheTransformsOptions): any[]
export default cacheTransforms
