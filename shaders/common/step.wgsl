// Step: the per-pass uniform at every pass kernel's `step` binding (16 bytes), which the engines
// write before each pass (src/engine/webgpu.ts, webgpu-train.ts: four u32 words).

struct Step {
  pos: u32,      // position of the first token
  n_tokens: u32, // tokens in this pass (T)
  _pad0: u32,
  _pad1: u32,
}
