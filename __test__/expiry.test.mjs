import test from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { PackStorage, hash, tempRoot } from './helpers.mjs'

const manifestOf = (root, version) => path.join(root, `pc3-${hash(version).slice(0, 32)}`, 'MANIFEST')

test('a version open in a live instance is never expired by another version', async (t) => {
  const root = tempRoot(t)
  const live = new PackStorage({ root, version: 'live' })
  live.set('s', 'k', Buffer.from('kept'))
  await live.save()
  assert.equal((await live.load('s')).length, 1)
  const hourAgo = new Date(Date.now() - 3600_000)
  fs.utimesSync(manifestOf(root, 'live'), hourAgo, hourAgo)
  const other = new PackStorage({ root, version: 'other', expire: 1000 })
  other.set('s', 'k', Buffer.from('x'))
  assert.equal((await other.save()).versionsExpired, 0)
  assert.equal((await live.get('s', 'k')).toString(), 'kept')
  assert.equal((await live.load('s')).length, 1)
  await live.close()
  other.set('s', 'k', Buffer.from('y'))
  assert.equal((await other.save()).versionsExpired, 1)
  assert.equal(fs.existsSync(manifestOf(root, 'live')), false)
})

test('a manifest mtime in the year 2150 does not make a version immortal', async (t) => {
  const root = tempRoot(t)
  const ahead = new PackStorage({ root, version: 'ahead' })
  ahead.set('s', 'k', Buffer.from('v'))
  await ahead.save()
  await ahead.close()
  const future = new Date('2150-01-01T00:00:00Z')
  fs.utimesSync(manifestOf(root, 'ahead'), future, future)
  const other = new PackStorage({ root, version: 'other', expire: 0 })
  other.set('s', 'k', Buffer.from('x'))
  assert.equal((await other.save()).versionsExpired, 0)
  const restarted = fs.statSync(manifestOf(root, 'ahead')).mtimeMs
  assert.ok(Math.abs(restarted - Date.now()) < 60_000, `mtime ${new Date(restarted).toISOString()}`)
  await new Promise((resolve) => setTimeout(resolve, 5))
  other.set('s', 'k', Buffer.from('y'))
  assert.equal((await other.save()).versionsExpired, 1)
})
