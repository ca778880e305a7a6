/**
 * A verify-pool worker: hashing and header proofs off the client worker's thread (verify.ts).
 *
 * @module
 */
import { expose } from 'comlink'
import { verifyApi } from '../net/verify.ts'

expose(verifyApi)
