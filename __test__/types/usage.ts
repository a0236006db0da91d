// The README's usage, as a plugin in TypeScript would write it; checked by
// `tsc --noEmit --strict` (__test__/types.test.mjs), never run.
import { PackStorage, PackcacheErrorCode, hash } from '../../index.js'
import type { PackcacheError, PackStorageOptions, SaveStats } from '../../index.js'

declare const configHash: string
declare function restore(key: string, value: Buffer): void

export async function build(compiledCode: string): Promise<SaveStats> {
  const options: PackStorageOptions = { root: '.cache/packcache', version: `my-plugin@1+${configHash}` }
  const cache = new PackStorage(options)
  const [modules, snapshots] = await cache.loadMany(['modules', 'snapshots'])
  for (const [key, value] of modules) restore(key.toString(), value)
  void snapshots
  cache.set('modules', '/src/app.tsx', Buffer.from(compiledCode))
  cache.set('modules', new Uint8Array([1, 2]), new Uint8Array([3]))
  cache.remove('snapshots', '/src/deleted.ts')
  const one: Buffer | null = await cache.get('modules', '/src/app.tsx')
  const many: Array<Buffer | null> = await cache.getMany('modules', ['/src/app.tsx', Buffer.from('x')])
  const columns = await cache.loadColumns(['modules'])
  for (const { buffer, offsets } of columns[0]) buffer.subarray(offsets[0], offsets[1])
  void one
  void many
  const stats = await cache.save()
  await cache.close()
  const digest: string = hash(compiledCode)
  void digest
  return stats
}

export function isCorrupt(error: unknown): boolean {
  const code = (error as PackcacheError).code
  return code === 'PACKCACHE_CORRUPT' || code === PackcacheErrorCode.PACKCACHE_IO
}

export const lz4: PackStorageOptions = { root: 'r', version: 'v', compression: 'lz4' }
// @ts-expect-error: not a codec
export const typo: PackStorageOptions = { root: 'r', version: 'v', compression: 'lz5' }
