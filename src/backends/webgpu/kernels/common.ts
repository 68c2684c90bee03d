// Helpers the WGSL kernels share: binding declarations, the 1-D entry point, strided index arithmetic with
// dimension merging, and storage coercion.

import type { DType, Shape } from '../../../core/dtype.js';
import { GpuTensor, type GpuRuntime } from '../device.js';

export const WG = 256;

export const T = (s: object): GpuTensor => {
  if (!(s instanceof GpuTensor)) throw new TypeError('webgpu backend: got a storage of another backend (move tensors with tensor(await t.data(), …) first)');
  return s;
};

export const wgslType = (dtype: DType): 'f32' | 'i32' => {
  if (dtype === 'float64') throw new TypeError("webgpu backend: float64 is not supported (WGSL has no f64); use float32");
  return dtype === 'int32' ? 'i32' : 'f32';
};

/** `@binding(i)` read-only / read-write storage arrays. */
export const ro = (i: number, name: string, ty = 'f32') => `@group(0) @binding(${i}) var<storage, read> ${name}: array<${ty}>;\n`;
export const rw = (i: number, name: string, ty = 'f32') => `@group(0) @binding(${i}) var<storage, read_write> ${name}: array<${ty}>;\n`;

/** The entry point of a kernel with one thread per item (p(0) items): `i` is the item. */
export const main1d = (body: string) => `
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (i >= pu(0u)) { return; }
  ${body}
}`;

/** Threads of a row kernel for rows of `cols` elements: about 8 elements a thread, 32 to 256 threads (a CPU
 *  implementation such as SwiftShader pays for every thread at each barrier; a GPU wants wide rows spread). */
export const rowThreads = (cols: number): number => {
  let w = 32;
  while (w < WG && w * 8 < cols) w *= 2;
  return w;
};

/**
 * A kernel with one workgroup of `wg` threads per item (p(0) items): `row` is the item, `lid` the thread, WGR the
 * thread count; wgSum/wgMax reduce over the workgroup (tree order: deterministic). Uniform control flow.
 */
export const mainRow = (body: string, decls = '', wg = WG) => `
const WGR = ${wg}u;
var<workgroup> red: array<f32, ${wg}>;
var<workgroup> redB: array<f32, ${wg}>;
fn wgSum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn wgMax(lid: u32, v: f32) -> f32 {
  redB[lid] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { redB[lid] = maxN(redB[lid], redB[lid + s]); }
    workgroupBarrier();
  }
  let r = redB[0];
  workgroupBarrier();
  return r;
}
${decls}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= pu(0u)) { return; }
  ${body}
}`;

/** WGSL: offset of linear index `i` over the iteration shape at p(2…7) (rank p(1)) with strides at p(st…st+5). */
export const OFFS = /* wgsl */ `
fn offs(i: u32, st: u32) -> u32 {
  var r = i;
  var o = 0u;
  for (var d = i32(pu(1u)) - 1; d >= 0; d = d - 1) {
    let dim = pu(2u + u32(d));
    o = o + (r % dim) * pu(st + u32(d));
    r = r / dim;
  }
  return o;
}`;

export const MAX_RANK = 6;

/**
 * Drops size-1 dimensions and merges neighbours that are contiguous in every stride set, so most shapes become
 * rank 1–3 (and any rank-≤6 shape fits the kernels). Returns the merged shape and strides.
 */
export function mergeDims(shape: Shape, strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const sh: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = sh.length - 1;
    if (last >= 0 && strides.every((s, k) => st[k]![last] === s[d]! * shape[d]!)) {
      sh[last] = sh[last]! * shape[d]!;
      strides.forEach((s, k) => { st[k]![last] = s[d]!; });
    } else {
      sh.push(shape[d]!);
      strides.forEach((s, k) => st[k]!.push(s[d]!));
    }
  }
  if (sh.length === 0) { sh.push(1); st.forEach((s) => s.push(0)); }
  if (sh.length > MAX_RANK) throw new RangeError(`webgpu backend: strided access over ${sh.length} dimensions (after merging) is not supported (at most ${MAX_RANK})`);
  return { shape: sh, strides: st };
}

/** ints p(1…): rank, shape (6), then each stride set (6 each). */
export function stridedInts(m: { shape: number[]; strides: number[][] }): number[] {
  const pad = (a: number[]) => [...a, ...new Array(MAX_RANK - a.length).fill(0)];
  return [m.shape.length, ...pad(m.shape), ...m.strides.flatMap(pad)];
}

/** Runs a 1-D kernel over n items. */
export function run1d(rt: GpuRuntime, spec: { key: string; code: () => string }, buffers: GpuTensor[], n: number, ints: number[] = [], floats: number[] = []): void {
  if (n === 0) return;
  rt.dispatch(spec, buffers, [n, ...ints], floats, Math.ceil(n / WG));
}
