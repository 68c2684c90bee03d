// The `webgpu` backend: every kernel in WGSL, tensors in GPU buffers (pooled, freed by step scopes), a step
// recorded into a few command buffers and submitted without waiting; reads only through mapAsync (`await t.data()`).
// In browsers it uses navigator.gpu; in Node the optional `webgpu` package (Dawn), imported on first use.
//
//   import { registerWebGPUBackend, LlamaForCausalLM } from 'llamatrain';
//   const backend = await registerWebGPUBackend();            // registers 'webgpu'
//   const model = new LlamaForCausalLM(cfg, { backend });     // or setBackend('webgpu')

import { type Backend, type KernelTable, registerBackend } from '../../core/backend.js';
import { type DType, type TypedArray, isHalf } from '../../core/dtype.js';
import { halfToFloat32 } from '../../core/half.js';
import { GpuRuntime, GpuTensor } from './device.js';
import type { Gpu, GpuAdapter, GpuAdapterInfo, GpuDevice } from './gpu-types.js';
import { attentionKernels } from './kernels/attention.js';
import { elementwiseKernels } from './kernels/elementwise.js';
import { gemmKernels } from './kernels/gemm.js';
import { multiKernels } from './kernels/multi.js';
import { rowKernels } from './kernels/rows.js';

export interface WebGPUBackendOptions {
  /** A GPUDevice to share with the rest of the app (its limits are used as they are). Default: a device of its own. */
  device?: object;
  /** Which adapter to ask for when making the device. */
  powerPreference?: 'low-power' | 'high-performance';
  /** Registry name. Default 'webgpu'. */
  name?: string;
  /**
   * GEMM kernel: 'tiled' (workgroup-memory tiles, register blocks: for GPUs) or 'direct' (register blocks read
   * straight from memory, no barriers: several times faster on software adapters, which run each invocation as a
   * CPU coroutine). Default: 'direct' on a software adapter, else 'tiled'.
   */
  gemm?: 'tiled' | 'direct';
}

/** The adapter the backend runs on. */
export interface WebGPUInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (SwiftShader, llvmpipe/lavapipe, WARP) or the browser's fallback adapter: correct, slow. */
  isSoftware: boolean;
  /** Where WebGPU came from: 'navigator.gpu', the 'webgpu' package (Dawn) or a device the caller passed. */
  source: 'navigator.gpu' | 'webgpu package' | 'device option';
  limits: { maxComputeInvocationsPerWorkgroup: number; maxComputeWorkgroupStorageSize: number; maxStorageBufferBindingSize: number; maxBufferSize: number };
}

/** Thrown when WebGPU (or an adapter) is not available here; the message says what to install or enable. */
export class WebGPUUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebGPUUnavailableError';
  }
}

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

const HELP_NODE = 'In Node, WebGPU comes from the optional npm package `webgpu` (Dawn; `npm install webgpu`) and a Vulkan, ' +
  'Metal or D3D12 driver: on Linux a GPU driver with Vulkan, or for software rendering (slow, for tests) ' +
  '`apt-get install -y chromium libvulkan1` and `VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json` in the environment';
const HELP_BROWSER = 'In a browser, WebGPU needs a browser that ships it (Chrome/Edge 113+, Safari 26+, Firefox 141+ on Windows) and a ' +
  'secure context (https or localhost); headless Chromium needs --enable-unsafe-webgpu';

/** Whether a software adapter: the spec's fallback flag, or a CPU rasterizer's name. */
function software(info: GpuAdapterInfo, adapter: GpuAdapter | null): boolean {
  if (info.isFallbackAdapter || adapter?.isFallbackAdapter) return true;
  const s = `${info.vendor ?? ''} ${info.architecture ?? ''} ${info.device ?? ''} ${info.description ?? ''}`.toLowerCase();
  return /swiftshader|llvmpipe|lavapipe|softpipe|microsoft basic render|warp/.test(s);
}

/** navigator.gpu, or the `webgpu` package's GPU in Node; throws WebGPUUnavailableError with what to do. */
async function findGpu(): Promise<{ gpu: Gpu; source: WebGPUInfo['source'] }> {
  const nav = (globalThis as { navigator?: { gpu?: Gpu } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, source: 'navigator.gpu' };
  if (!isNode) throw new WebGPUUnavailableError(`webgpu backend: this browser has no navigator.gpu. ${HELP_BROWSER}`);
  let mod: { create: (flags: string[]) => Gpu };
  try {
    const spec = 'webgpu'; // not a literal import: bundlers must not try to resolve it for the browser
    mod = (await import(/* @vite-ignore */ /* webpackIgnore: true */ spec)) as typeof mod;
  } catch (e) {
    throw new WebGPUUnavailableError(`webgpu backend: the package 'webgpu' could not be loaded (${(e as Error).message.split('\n')[0]}). ${HELP_NODE}`);
  }
  // Dawn's instance must outlive its devices: keep it for the life of the process
  dawnGpu ??= mod.create([]);
  return { gpu: dawnGpu, source: 'webgpu package' };
}

let dawnGpu: Gpu | null = null;

/** The runtime of the backend registered last (webgpuInfo, webgpuMemory, profiles); all of them in `runtimes`. */
let runtime: GpuRuntime | null = null;
const runtimes = new Map<object, { rt: GpuRuntime; info: WebGPUInfo }>();
let backendInfo: WebGPUInfo | null = null;
const registered = new Map<string, Backend>();

/** The adapter the backend registered last runs on (null before registerWebGPUBackend()). */
export function webgpuInfo(): WebGPUInfo | null {
  return backendInfo;
}

/** One line for logs: "NVIDIA (hopper), hardware" / "google swiftshader (software)". */
export function describeWebGPU(info: WebGPUInfo): string {
  const name = [info.vendor, info.architecture].filter(Boolean).join(' ') || info.description || 'unknown adapter';
  return `${name}${info.device && !name.includes(info.device) ? ` ${info.device}` : ''} (${info.isSoftware ? 'software' : 'hardware'}; via ${info.source})`;
}

/**
 * Looks for a WebGPU adapter without making a device: its info, or why there is none. `--backend auto` uses it
 * to take webgpu only on a hardware adapter.
 */
export async function probeWebGPU(opts: { powerPreference?: 'low-power' | 'high-performance' } = {}): Promise<{ info: WebGPUInfo } | { reason: string }> {
  try {
    const { gpu, source } = await findGpu();
    const adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined);
    if (!adapter) return { reason: `no WebGPU adapter (${source} found none)` };
    return { info: adapterInfo(adapter, source) };
  } catch (e) {
    return { reason: (e as Error).message.replace(/^webgpu backend: /, '') };
  }
}

function adapterInfo(adapter: GpuAdapter | null, source: WebGPUInfo['source'], device?: GpuDevice): WebGPUInfo {
  const info: GpuAdapterInfo = adapter?.info ?? (device as { adapterInfo?: GpuAdapterInfo } | undefined)?.adapterInfo ?? {};
  const l = (device ?? adapter)!.limits;
  return {
    vendor: info.vendor ?? '', architecture: info.architecture ?? '', device: info.device ?? '', description: info.description ?? '',
    isSoftware: software(info, adapter), source,
    limits: {
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup, maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize, maxBufferSize: l.maxBufferSize,
    },
  };
}

/** The limits this backend asks for: the adapter's own (the defaults are smaller than most GPUs offer). */
function wantedLimits(adapter: GpuAdapter): Record<string, number> {
  const l = adapter.limits;
  return {
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
  };
}

/**
 * Starts WebGPU (an adapter and a device, or the device passed) and registers the backend under `name`
 * ('webgpu'). Calling it again returns the registered backend. Throws WebGPUUnavailableError when there is no
 * WebGPU or no adapter here, saying what to install or enable.
 */
export async function registerWebGPUBackend(opts: WebGPUBackendOptions = {}): Promise<Backend> {
  const name = opts.name ?? 'webgpu';
  const have = registered.get(name);
  if (have) return have;
  // one runtime per device: the backend's own device (made once), or each device the caller passes
  const key: object = opts.device ?? runtimes;
  let entry = runtimes.get(key);
  if (!entry) {
    let device: GpuDevice;
    let info: WebGPUInfo;
    if (opts.device) {
      device = opts.device as GpuDevice;
      info = adapterInfo(null, 'device option', device);
    } else {
      const { gpu, source } = await findGpu();
      const adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined);
      if (!adapter) {
        throw new WebGPUUnavailableError(`webgpu backend: no WebGPU adapter found (through ${source}). ${isNode ? HELP_NODE : HELP_BROWSER}`);
      }
      device = await adapter.requestDevice({ requiredLimits: wantedLimits(adapter) });
      info = adapterInfo(adapter, source, device);
    }
    const l = device.limits;
    if (l.maxStorageBuffersPerShaderStage < 8 || l.maxComputeInvocationsPerWorkgroup < 256 || l.maxComputeWorkgroupStorageSize < 16384) {
      throw new WebGPUUnavailableError('webgpu backend: the device is below WebGPU\'s default limits (8 storage buffers per stage, ' +
        '256 invocations and 16 KiB of workgroup memory per workgroup); pass a device made with the defaults or more');
    }
    entry = { rt: new GpuRuntime(device), info };
    runtimes.set(key, entry);
  }
  runtime = entry.rt;
  backendInfo = entry.info;
  const rt = entry.rt;
  const backend: Backend = {
    name,
    upload: (data, dtype) => {
      // a half weight (bfloat16/float16 bits) is widened to float32 here: its kernels read it as f32, and the GPU
      // gets no memory saving from half storage (the host and the CPU backends do)
      if (data instanceof Uint16Array) {
        if (!dtype || !isHalf(dtype)) throw new TypeError('webgpu backend: a Uint16Array upload needs its dtype (bfloat16 or float16)');
        return rt.upload(halfToFloat32(data, dtype));
      }
      if (!(data instanceof Float32Array || data instanceof Int32Array)) {
        throw new TypeError(`webgpu backend: cannot upload ${data.constructor.name} (float64 is not supported; use float32)`);
      }
      return rt.upload(data);
    },
    download: (s: object, dtype: DType, size: number): Promise<TypedArray> => rt.download(s as GpuTensor, size, dtype === 'int32'),
    supports: (dtype) => dtype !== 'float64',
    memory: rt,
  };
  const table: Partial<KernelTable> = {
    ...elementwiseKernels(rt), ...rowKernels(rt), ...gemmKernels(rt, opts.gemm ?? (backendInfo!.isSoftware ? 'direct' : 'tiled')),
    ...attentionKernels(rt), ...multiKernels(rt),
  };
  registerBackend(backend, table);
  registered.set(name, backend);
  return backend;
}

/** Bytes of GPU buffers the backend registered last holds (live tensors and its pool) and their peak. */
export function webgpuMemory(): { allocatedBytes: number; peakBytes: number } {
  return { allocatedBytes: runtime?.allocatedBytes ?? 0, peakBytes: runtime?.peakBytes ?? 0 };
}

/** Waits until the device has finished everything submitted so far (timing; a step never needs it). */
export async function webgpuSync(): Promise<void> {
  for (const { rt } of runtimes.values()) {
    rt.flush();
    await rt.device.queue.onSubmittedWorkDone();
    rt.checkErrors();
  }
}

/** Per-kernel device time of what runs between the two calls (each dispatch submitted alone: slower; for tuning). */
export function webgpuStartProfile(): void {
  if (!runtime) throw new Error('webgpuStartProfile: the webgpu backend is not registered');
  runtime.startProfile();
}

export async function webgpuStopProfile(): Promise<{ kernel: string; ms: number; calls: number }[]> {
  return runtime ? runtime.stopProfile() : [];
}
