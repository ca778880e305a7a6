/**
 * A small ONNX graph builder: nodes, typed initializers and float32 inputs/outputs, serialised to
 * ModelProto bytes with onnx-proto (the ONNX 1.10 protobuf schema on protobufjs 6) for
 * `InferenceSession.create(bytes)`.
 *
 * ```ts
 * const g = new OnnxGraph('double')
 * const x = g.input('x', [1, 4])
 * g.output(g.node('Add', [x, x], {}, 'y'), [1, 4])
 * const session = await ort.InferenceSession.create(g.encode())
 * ```
 *
 * Only what the engine's graphs need: float32 activations, int attributes, int8/float32/int64
 * initializers stored as raw little-endian bytes (the ONNX rule for `raw_data`; every JS host we run
 * on is little-endian, as src/tensor/tensorblock.ts notes).
 *
 * @module
 */
import onnxProto from 'onnx-proto'
import type { onnx as P } from 'onnx-proto'

// onnx-proto is CommonJS (`module.exports = $root`): its namespace is only reachable through the
// default export under Node's ESM loader, and bundlers give the same object.
const { onnx } = onnxProto

/**
 * Opset 17: the last one whose ReduceMean takes `axes` as an attribute, and per-axis
 * DequantizeLinear (13+). IR version 8 is the one that pairs with it.
 */
export const ONNX_OPSET = 17
export const ONNX_IR_VERSION = 8

/** A dimension: a size, or a name for a size given at run time. */
export type Dim = number | string

/** Node attributes: every attribute the engine's graphs use is an int or a list of ints. */
export type IntAttributes = Readonly<Record<string, number | readonly number[]>>

const INT = onnx.AttributeProto.AttributeType.INT
const INTS = onnx.AttributeProto.AttributeType.INTS
const FLOAT = onnx.TensorProto.DataType.FLOAT
const INT8 = onnx.TensorProto.DataType.INT8
const INT64 = onnx.TensorProto.DataType.INT64

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
}

function valueInfo(name: string, dims: readonly Dim[]): P.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } }
  }
}

/** One graph under construction; `encode()` gives the model bytes. Value names are unique per graph. */
export class OnnxGraph {
  readonly name: string
  readonly #nodes: P.INodeProto[] = []
  readonly #initializers: P.ITensorProto[] = []
  readonly #inputs: P.IValueInfoProto[] = []
  readonly #outputs: P.IValueInfoProto[] = []
  readonly #names = new Set<string>()
  #counter = 0

  constructor(name: string) {
    this.name = name
  }

  /** A fresh value name based on `hint` (or `hint` itself when it is free and `exact`). */
  #fresh(hint: string, exact = false): string {
    if (exact) {
      if (this.#names.has(hint)) throw new RangeError(`${this.name}: value name ${hint} is already used`)
      this.#names.add(hint)
      return hint
    }
    let name: string
    do name = `${hint}_${this.#counter++}`
    while (this.#names.has(name))
    this.#names.add(name)
    return name
  }

  /** A float32 graph input. */
  input(name: string, dims: readonly Dim[]): string {
    this.#inputs.push(valueInfo(this.#fresh(name, true), dims))
    return name
  }

  /** Declare `value` (which a node produced under that exact name) a graph output. */
  output(value: string, dims: readonly Dim[]): void {
    this.#outputs.push(valueInfo(value, dims))
  }

  /**
   * Append a node; returns its output's name: `out` exactly when given (for graph outputs), else a
   * fresh name derived from the op.
   */
  node(op: string, inputs: readonly string[], attributes: IntAttributes = {}, out?: string): string {
    const [output] = this.nodeN(op, inputs, 1, attributes, out === undefined ? undefined : [out])
    return output as string
  }

  /** Append a node with `count` outputs (Split). */
  nodeN(op: string, inputs: readonly string[], count: number, attributes: IntAttributes = {}, outs?: readonly string[]): string[] {
    const output = Array.from({ length: count }, (_, i) => (outs?.[i] !== undefined ? this.#fresh(outs[i] as string, true) : this.#fresh(op.toLowerCase())))
    const attribute = Object.entries(attributes).map(([name, v]): P.IAttributeProto =>
      typeof v === 'number' ? { name, type: INT, i: v } : { name, type: INTS, ints: [...v] }
    )
    this.#nodes.push({ opType: op, input: [...inputs], output, attribute, name: `${output[0] as string}_node` })
    return output
  }

  #initializer(hint: string, dataType: number, dims: readonly number[], raw: Uint8Array): string {
    const name = this.#fresh(hint)
    this.#initializers.push({ name, dataType, dims: [...dims], rawData: raw })
    return name
  }

  /** A float32 constant of shape `dims` (row-major). */
  f32(hint: string, data: Float32Array, dims: readonly number[]): string {
    checkCount(this.name, hint, data.length, dims)
    return this.#initializer(hint, FLOAT, dims, bytesOf(data))
  }

  /** An int8 constant of shape `dims` (row-major). */
  i8(hint: string, data: Int8Array, dims: readonly number[]): string {
    checkCount(this.name, hint, data.length, dims)
    return this.#initializer(hint, INT8, dims, bytesOf(data))
  }

  /** An int64 vector (shapes for Reshape). */
  i64(hint: string, values: readonly number[]): string {
    return this.#initializer(hint, INT64, [values.length], bytesOf(BigInt64Array.from(values, (v) => BigInt(v))))
  }

  /** A float32 scalar (rank 0). */
  scalar(hint: string, value: number): string {
    return this.#initializer(hint, FLOAT, [], bytesOf(Float32Array.of(value)))
  }

  /** The serialised ModelProto. */
  encode(): Uint8Array {
    return onnx.ModelProto.encode({
      irVersion: ONNX_IR_VERSION,
      opsetImport: [{ domain: '', version: ONNX_OPSET }],
      producerName: 'blyan',
      graph: { name: this.name, node: this.#nodes, initializer: this.#initializers, input: this.#inputs, output: this.#outputs }
    }).finish()
  }
}

function checkCount(graph: string, hint: string, length: number, dims: readonly number[]): void {
  const n = dims.reduce((a, b) => a * b, 1)
  if (length !== n) throw new RangeError(`${graph}: constant ${hint} has ${length} elements, shape [${dims.join(', ')}] needs ${n}`)
}
