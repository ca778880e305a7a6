// Route: one routing decision, written by router.wgsl into `routes` [T, n_layers, top_k] and read
// by the expert kernels: 12 bytes (ROUTE_BYTES in src/gpu/kernels/router.ts). NONE is the slot of
// an expert that is not resident, in the routes and the residency table (NO_SLOT there).

const NONE: u32 = 0xffffffffu;

struct Route {
  expert: u32, // expert id
  slot: u32,   // pool slot, NONE when not resident
  weight: f32, // router weight
}
