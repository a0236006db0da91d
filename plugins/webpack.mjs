import { createRequire } from 'node:module'

const { PackcacheWebpackPlugin } = createRequire(import.meta.url)('./webpack.js')

export { PackcacheWebpackPlugin }
export default PackcacheWebpackPlugin
