// The WebGPU runtime under the `webgpu` backend: buffers, their pool and step scopes, the command recorder
// (dispatches go into one open command encoder and are submitted in batches without waiting), the pipeline
// cache, and the only way back to the host (mapAsync).
//
// Ordering. A step never waits on the device: kernels record dispatches; `flush()` submits them. Uploads use
// queue.writeBuffer, which the queue runs before any later submit. So a buffer must never be written by an upload
// while an unsubmitted dispatch still uses it: freed buffers wait in `pendingFree` and join the pool only when
// the batch that last used them has been submitted (flush). Parameters of every dispatch live in one uniform
// arena (256 bytes a dispatch), written with one writeBuffer at flush.

import type { BackendMemory, Storage } from '../../core/backend.js';
import { type GpuBindGroupLayout, type GpuBuffer, type GpuCommandEncoder, type GpuComputePassEncoder, type GpuComputePipeline,
  type GpuDevice, MAP_READ, Usage } from './gpu-types.js';

/** A tensor's storage on the GPU: a pooled buffer (`bytes` ≥ 4·n, its size class) holding n 32-bit elements. */
export class GpuTensor {
  constructor(readonly buffer: GpuBuffer, readonly bytes: number, readonly n: number) {}
}

/** A compiled kernel variant. `code` is made only on a cache miss. */
export interface KernelSpec { key: string; code: () => string }

/** Words of the parameter block: 32 u32 (p(i)/pi(i) in WGSL) then 32 f32 (pf(i)). */
const SLOT_BYTES = 256;
const ARENA_SLOTS = 1024;
/** Dispatches per submitted command buffer (keeps the device busy while the host records the rest). */
const BATCH = 256;

/** Size class of a buffer: 256-byte steps up to 4 KiB, then 8 classes per power of two (≤ 12.5% slack). */
function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  if (b <= 4096) return b;
  const step = 2 ** (Math.floor(Math.log2(b)) - 3);
  return Math.ceil(b / step) * step;
}

/** The WGSL every kernel starts with: the parameter block and NaN-safe helpers (WGSL may assume no NaN in
 *  comparisons, so non-finite values are tested on their bits). */
export const PRELUDE = /* wgsl */ `
@group(0) @binding(0) var<uniform> P: array<vec4<u32>, 16>;
fn pu(i: u32) -> u32 { return P[i >> 2u][i & 3u]; }
fn pi(i: u32) -> i32 { return bitcast<i32>(P[i >> 2u][i & 3u]); }
fn pf(i: u32) -> f32 { let k = 32u + i; return bitcast<f32>(P[k >> 2u][k & 3u]); }
fn isNan(x: f32) -> bool { let b = bitcast<u32>(x); return (b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu) != 0u; }
fn notFinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u; }
fn maxN(a: f32, b: f32) -> f32 { if (isNan(a) || isNan(b)) { return a + b; } return max(a, b); }
`;

export class GpuRuntime implements BackendMemory {
  readonly device: GpuDevice;
  private encoder: GpuCommandEncoder | null = null;
  private pass: GpuComputePassEncoder | null = null;
  private dispatches = 0;
  private readonly arena: GpuBuffer;
  private readonly arenaHost = new ArrayBuffer(SLOT_BYTES * ARENA_SLOTS);
  private readonly arenaU32 = new Uint32Array(this.arenaHost);
  private readonly arenaF32 = new Float32Array(this.arenaHost);
  private slots = 0;
  private readonly pipelines = new Map<string, { pipeline: GpuComputePipeline; layout: GpuBindGroupLayout }>();
  /** Free buffers by size class, usable now. */
  private readonly pool = new Map<number, GpuBuffer[]>();
  /** Buffers freed while the open batch may still use them: pooled at the next flush. */
  private pendingFree: [number, GpuBuffer][] = [];
  private readonly staging = new Map<number, GpuBuffer[]>();
  private readonly scopes: Set<Storage>[] = [];
  private readonly finalizer = new FinalizationRegistry<{ buffer: GpuBuffer; bytes: number }>((h) => this.pendingFree.push([h.bytes, h.buffer]));
  private errors: string[] = [];
  /** Bytes in buffers the pool has created (live or pooled), and its peak. */
  allocatedBytes = 0;
  peakBytes = 0;
  /** Small buffers bound where a kernel's optional inputs are absent (two: one binding may be writable). */
  readonly dummy: GpuTensor;
  readonly dummy2: GpuTensor;

  /** Submit and check every dispatch on its own (slow; names the kernel in validation errors). */
  readonly debug: boolean;
  private profile: { start: number; last: number; byKernel: Map<string, { ms: number; calls: number }> } | null = null;

  constructor(device: GpuDevice) {
    this.device = device;
    this.debug = typeof process !== 'undefined' && process.env?.LLAMATRAIN_WEBGPU_DEBUG === '1';
    this.arena = device.createBuffer({ size: SLOT_BYTES * ARENA_SLOTS, usage: Usage.UNIFORM | Usage.COPY_DST });
    const onError = (e: { error: { message: string } }) => { this.errors.push(e.error.message); };
    if (device.addEventListener) device.addEventListener('uncapturederror', onError);
    else (device as unknown as { onuncapturederror: unknown }).onuncapturederror = onError;
    this.dummy = this.alloc(4);
    this.dummy2 = this.alloc(4);
  }

  /** Throws the first device error seen since the last check (validation errors are reported asynchronously). */
  checkErrors(): void {
    if (this.errors.length === 0) return;
    const first = this.errors[0]!;
    const more = this.errors.length - 1;
    this.errors = [];
    throw new Error(`webgpu: device error: ${first}${more ? ` (and ${more} more)` : ''}`);
  }

  // ---- memory --------------------------------------------------------------------------------------------

  /** A buffer for n 32-bit elements (contents undefined), owned by the innermost scope (or the GC outside). */
  alloc(n: number): GpuTensor {
    const bytes = sizeClass(n * 4);
    const free = this.pool.get(bytes);
    let buffer = free?.pop();
    if (!buffer) {
      if (bytes > this.device.limits.maxStorageBufferBindingSize) {
        throw new RangeError(`webgpu backend: a tensor of ${n} elements (${(n * 4 / 2 ** 20).toFixed(1)} MiB) exceeds this device's ` +
          `largest storage binding (${(this.device.limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB); use a smaller ` +
          'batch, sequence length or fused-loss chunk');
      }
      buffer = this.device.createBuffer({ size: bytes, usage: Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST });
      this.allocatedBytes += bytes;
      if (this.allocatedBytes > this.peakBytes) this.peakBytes = this.allocatedBytes;
    }
    const t = new GpuTensor(buffer, bytes, n);
    this.own(t);
    return t;
  }

  private own(t: GpuTensor): void {
    const top = this.scopes[this.scopes.length - 1];
    if (top) top.add(t);
    else this.finalizer.register(t, { buffer: t.buffer, bytes: t.bytes }, t);
  }

  private free(t: GpuTensor): void {
    this.pendingFree.push([t.bytes, t.buffer]);
  }

  openScope(): number {
    this.scopes.push(new Set());
    return this.scopes.length;
  }

  closeScope(depth: number, keep: ReadonlySet<Storage>): Storage[] {
    const freed: Storage[] = [];
    while (this.scopes.length >= depth) {
      for (const s of this.scopes.pop()!) {
        if (keep.has(s)) { this.own(s as GpuTensor); continue; }
        this.free(s as GpuTensor);
        freed.push(s);
      }
    }
    return freed;
  }

  persist(s: Storage): void {
    for (let i = this.scopes.length - 1; i >= 0; i--) {
      if (this.scopes[i]!.delete(s)) { const t = s as GpuTensor; this.finalizer.register(t, { buffer: t.buffer, bytes: t.bytes }, t); return; }
    }
  }

  release(s: Storage): boolean {
    if (!(s instanceof GpuTensor)) return false;
    let found = false;
    for (let i = this.scopes.length - 1; i >= 0 && !found; i--) found = this.scopes[i]!.delete(s);
    if (!found && !this.finalizer.unregister(s)) return false;
    this.free(s);
    return true;
  }

  // ---- host ↔ device -------------------------------------------------------------------------------------

  upload(data: Float32Array | Int32Array): GpuTensor {
    const t = this.alloc(data.length);
    if (data.length > 0) this.device.queue.writeBuffer(t.buffer, 0, data);
    return t;
  }

  /** Reads n elements (submits what is recorded first); the only wait on the device. */
  async download(t: GpuTensor, n: number, int: boolean): Promise<Float32Array | Int32Array> {
    if (n === 0) return int ? new Int32Array(0) : new Float32Array(0);
    const bytes = n * 4;
    const cls = sizeClass(bytes);
    const staging = this.staging.get(cls)?.pop() ?? this.device.createBuffer({ size: cls, usage: MAP_READ | Usage.COPY_DST });
    this.endPass();
    this.enc().copyBufferToBuffer(t.buffer, 0, staging, 0, bytes);
    this.flush();
    try {
      await staging.mapAsync(MAP_READ, 0, bytes);
    } catch (e) {
      this.checkErrors();
      throw e;
    }
    const out = int ? new Int32Array(n) : new Float32Array(n);
    new Uint8Array(out.buffer).set(new Uint8Array(staging.getMappedRange(0, bytes)));
    staging.unmap();
    let list = this.staging.get(cls);
    if (!list) this.staging.set(cls, list = []);
    list.push(staging);
    this.checkErrors();
    return out;
  }

  // ---- recording -----------------------------------------------------------------------------------------

  private enc(): GpuCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): void {
    if (this.pass) { this.pass.end(); this.pass = null; }
  }

  /** Records a buffer copy (ordered with the dispatches around it). */
  copy(src: GpuTensor, srcElem: number, dst: GpuTensor, dstElem: number, n: number): void {
    if (n === 0) return;
    this.endPass();
    this.enc().copyBufferToBuffer(src.buffer, srcElem * 4, dst.buffer, dstElem * 4, n * 4);
  }

  private pipeline(spec: KernelSpec): { pipeline: GpuComputePipeline; layout: GpuBindGroupLayout } {
    let p = this.pipelines.get(spec.key);
    if (!p) {
      const code = PRELUDE + spec.code();
      const module = this.device.createShaderModule({ code, label: spec.key });
      module.getCompilationInfo?.().then((info) => {
        for (const m of info.messages) if (m.type === 'error') this.errors.push(`WGSL of ${spec.key}: ${m.lineNum}:${m.linePos}: ${m.message}`);
      }, () => {});
      const pipeline = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: spec.key });
      p = { pipeline, layout: pipeline.getBindGroupLayout(0) };
      this.pipelines.set(spec.key, p);
    }
    return p;
  }

  /**
   * Records one dispatch: `ints` go to p(0…), `floats` to pf(0…); `buffers` bind at 1, 2, … in order; `groups`
   * workgroups (a count over 65535 is spread over y: kernels use the linear id wid.x + wid.y·nwg.x).
   */
  dispatch(spec: KernelSpec, buffers: readonly GpuTensor[], ints: readonly number[], floats: readonly number[], groups: number | [number, number, number]): void {
    let [x, y, z] = typeof groups === 'number' ? [groups, 1, 1] : groups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxDim = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxDim) {
      if (y !== 1) throw new Error(`internal: webgpu dispatch ${spec.key}: ${x}×${y} workgroups`);
      y = Math.ceil(x / maxDim);
      x = Math.ceil(x / y);
    }
    if (y > maxDim || z > maxDim) throw new RangeError(`webgpu: ${spec.key} needs ${y}×${z} workgroups, more than this device's ${maxDim} per dimension`);
    if (ints.length > 32 || floats.length > 32) throw new Error(`internal: webgpu dispatch ${spec.key}: too many parameters`);
    if (this.slots === ARENA_SLOTS) this.flush();
    const slot = this.slots++;
    const base = slot * (SLOT_BYTES / 4);
    for (let i = 0; i < ints.length; i++) this.arenaU32[base + i] = ints[i]! >>> 0;
    for (let i = 0; i < floats.length; i++) this.arenaF32[base + 32 + i] = floats[i]!;
    const { pipeline, layout } = this.pipeline(spec);
    const entries = [{ binding: 0, resource: { buffer: this.arena, offset: slot * SLOT_BYTES, size: SLOT_BYTES } }];
    buffers.forEach((b, i) => entries.push({ binding: i + 1, resource: { buffer: b.buffer, offset: 0, size: b.bytes } }));
    const group = this.device.createBindGroup({ layout, entries });
    if (!this.pass) this.pass = this.enc().beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, group);
    this.pass.dispatchWorkgroups(x, y, z);
    if (this.debug) {
      // debugging aid (LLAMATRAIN_WEBGPU_DEBUG=1): one submit per dispatch, each in an error scope naming the kernel
      this.device.pushErrorScope('validation');
      this.flush();
      this.device.popErrorScope().then((e) => { if (e) this.errors.push(`${spec.key}: ${e.message}`); }, () => {});
      return;
    }
    if (this.profile) {
      // profiling aid: one submit per dispatch; the time between completions is the dispatch's device time
      // (the host records faster than a device runs, so the queue stays busy)
      this.flush();
      const p = this.profile;
      this.device.queue.onSubmittedWorkDone().then(() => {
        const now = performance.now();
        const e = p.byKernel.get(spec.key) ?? { ms: 0, calls: 0 };
        e.ms += now - Math.max(p.last, p.start); e.calls++;
        p.byKernel.set(spec.key, e);
        p.last = now;
      }, () => {});
      return;
    }
    if (++this.dispatches >= BATCH) this.flush();
  }

  /** Starts a per-kernel profile (one submit per dispatch: slower, for measuring only). */
  startProfile(): void {
    this.flush();
    this.profile = { start: performance.now(), last: 0, byKernel: new Map() };
  }

  /** Ends the profile: device milliseconds and dispatches per kernel variant, largest first. */
  async stopProfile(): Promise<{ kernel: string; ms: number; calls: number }[]> {
    const p = this.profile;
    if (!p) return [];
    await this.device.queue.onSubmittedWorkDone();
    this.profile = null;
    return [...p.byKernel].map(([kernel, e]) => ({ kernel, ...e })).sort((a, b) => b.ms - a.ms);
  }

  /** Submits everything recorded (without waiting) and returns buffers freed meanwhile to the pool. */
  flush(): void {
    this.endPass();
    if (this.encoder) {
      if (this.slots > 0) this.device.queue.writeBuffer(this.arena, 0, this.arenaHost, 0, this.slots * SLOT_BYTES);
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
    }
    this.slots = 0;
    this.dispatches = 0;
    for (const [bytes, buffer] of this.pendingFree) {
      let list = this.pool.get(bytes);
      if (!list) this.pool.set(bytes, list = []);
      list.push(buffer);
    }
    this.pendingFree = [];
  }

  /** Frees the pooled buffers (memory kept for reuse) back to the driver. */
  trim(): void {
    this.flush();
    for (const list of this.pool.values()) for (const b of list) { this.allocatedBytes -= b.size; b.destroy(); }
    this.pool.clear();
  }
}

/** Workgroups for n items at `per` items each. */
export const groupsFor = (n: number, per: number): number => Math.ceil(n / per);
