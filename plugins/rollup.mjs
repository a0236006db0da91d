import { createRequire } from 'node:module'

const { cacheTransforms } = createRequire(import.meta.url)('./rollup.js')

export { cacheTransforms }
export default cacheTransforms
