// A backend that behaves like a GPU as far as the core can tell: its storages are opaque boxes (nothing outside
// its kernels can see the numbers), it has no synchronous read (dataSync() throws), and its reads are
// asynchronous and counted. The kernels are ref's, run on the boxed arrays. A training step that passes on it
// never waits on the device except where it awaits a read, and `reads` says how many it did.
import {
  type Backend, type KernelName, type KernelTable, type Storage, type TypedArray, halfToFloat32, isHalf, registerBackend,
} from '../../src/index.js';
import { refKernels } from '../../src/backends/ref/kernels.js';

/** A device buffer: the array is private to the kernels. */
class DeviceBuffer {
  constructor(readonly array: TypedArray) {}
}

function unbox(x: unknown): unknown {
  if (x instanceof DeviceBuffer) return x.array;
  if (Array.isArray(x)) return x.map(unbox);
  if (x !== null && typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype) {
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, unbox(v)]));
  }
  return x; // numbers, strings, host tables (rope's invFreq) pass as they are
}

function box(x: unknown): unknown {
  if (ArrayBuffer.isView(x)) return new DeviceBuffer(x as TypedArray); // a kernel's output storage
  if (x !== null && typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype) {
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, box(v)]));
  }
  return x;
}

export interface StrictBackend extends Backend {
  /** Asynchronous reads (download calls) so far. */
  reads: number;
}

/** Creates and registers the strict backend under `name`. */
export function registerStrictBackend(name = 'strict-async'): StrictBackend {
  const backend: StrictBackend = {
    name,
    reads: 0,
    upload: (data) => new DeviceBuffer(data.slice()),
    download: async (s, dtype) => {
      backend.reads++;
      await new Promise((r) => setTimeout(r, 0)); // a read completes later, as a GPU's mapAsync does
      const a = (s as DeviceBuffer).array;
      return isHalf(dtype) ? halfToFloat32(a as Uint16Array, dtype) : a.slice(); // half bits read back as float32 values
    },
    // no downloadSync: Tensor.dataSync() throws "cannot be read synchronously"
    supports: () => true,
  };
  const table: Partial<KernelTable> = {};
  for (const k of Object.keys(refKernels) as KernelName[]) {
    const f = refKernels[k] as (...args: unknown[]) => unknown;
    (table as Record<string, unknown>)[k] = (...args: unknown[]) => box(f(...args.map(unbox)));
  }
  registerBackend(backend, table);
  return backend;
}

/** The array inside a storage of this backend (tests only, for checks the backend itself cannot be asked). */
export function peek(s: Storage): TypedArray {
  return (s as DeviceBuffer).array;
}
