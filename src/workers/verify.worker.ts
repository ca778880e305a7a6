/**
 * A verify-pool worker: hashing and header proofs off the client worker's thread (src/net/verify-pool.ts).
 *
 * @module
 */
import { expose } from 'comlink'
import { verifyApi } from '../net/verify-pool.ts'

expose(verifyApi)
