// Finding and loading a system BLAS through koffi (an optional dependency: prebuilt, no compiler). Node only.
//
// Order: LLAMATRAIN_BLAS (or the `library` option) alone when set; otherwise Accelerate on macOS, then OpenBLAS
// (Debian's libopenblas0: the alternative libopenblas.so.0, then its pthread and openmp builds), BLIS and MKL.
// A library counts when it loads and exports cblas_sgemm. Slow reference BLAS (libblas.so.3) is never picked.

import { existsSync, readFileSync } from 'node:fs';

/** Row-major single-precision GEMM on absolute addresses: C = alpha·op(A)·op(B) + beta·C. */
export type Sgemm = (transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, a: number, lda: number,
  b: number, ldb: number, beta: number, c: number, ldc: number) => void;

export interface Blas {
  /** 'OpenBLAS', 'BLIS', 'MKL', 'Accelerate', or what the caller calls it. */
  kind: string;
  /** The file (or name) it was loaded from. */
  path: string;
  /** One line about the build (OpenBLAS: its config and core), or ''. */
  info: string;
  sgemm: Sgemm;
  /** The absolute address of a typed array's first element (for pointers into the wasm memory: no copy). */
  address(view: Float32Array): number;
  /** Sets the library's thread count where it has an API for it (OpenBLAS, BLIS, MKL). */
  setThreads?(n: number): void;
  getThreads?(): number;
  /** Notes for the user (e.g. OPENBLAS_CORETYPE is set). */
  notes: string[];
}

export type BlasLoad = { blas: Blas; reason?: undefined } | { blas?: undefined; reason: string };

// The koffi surface we use (typed here: koffi is optional, the build must not need its types)
interface KoffiLib { func(decl: string): (...args: unknown[]) => unknown }
interface Koffi { load(path: string): KoffiLib; address(v: unknown): bigint }

let koffiModule: Koffi | null | undefined;

async function loadKoffi(): Promise<Koffi | null> {
  if (koffiModule === undefined) {
    try {
      const name = 'koffi'; // a variable: TypeScript must not need the optional package to compile
      const mod = (await import(name)) as { default?: Koffi } & Koffi;
      koffiModule = (mod.default ?? mod) as Koffi;
    } catch {
      koffiModule = null;
    }
  }
  return koffiModule;
}

/** The libraries tried, in order, when no override is given. */
export function blasCandidates(platform: string = process.platform, arch: string = process.arch): string[] {
  if (platform === 'darwin') {
    return ['/System/Library/Frameworks/Accelerate.framework/Accelerate', '/opt/homebrew/opt/openblas/lib/libopenblas.dylib',
      '/usr/local/opt/openblas/lib/libopenblas.dylib', 'libopenblas.dylib', 'libblis.dylib', 'libmkl_rt.dylib'];
  }
  if (platform === 'win32') return ['libopenblas.dll', 'openblas.dll', 'libblis.dll', 'mkl_rt.2.dll', 'mkl_rt.dll'];
  const triple = ({ x64: 'x86_64', arm64: 'aarch64', ppc64: 'powerpc64le', riscv64: 'riscv64', s390x: 's390x' } as Record<string, string>)[arch];
  const multi = triple ? `/usr/lib/${triple}-linux-gnu` : null;
  return [
    'libopenblas.so.0', 'libopenblas.so',
    ...(multi ? [`${multi}/openblas-pthread/libopenblas.so.0`, `${multi}/openblas-openmp/libopenblas.so.0`] : []),
    'libopenblaso.so.0', 'libopenblasp.so.0',
    'libblis.so.4', 'libblis.so.3', 'libblis.so', 'libblis-mt.so.4',
    'libmkl_rt.so.2', 'libmkl_rt.so', '/opt/intel/oneapi/mkl/latest/lib/libmkl_rt.so.2',
  ];
}

/**
 * Keeps a loaded library mapped until the process ends. OpenMP builds of OpenBLAS leave worker threads parked in
 * the library; unloading it at exit (as the FFI does) then crashes the process. dlopen with RTLD_NODELETE adds a
 * reference that is never dropped.
 */
function pin(koffi: Koffi, path: string): void {
  try {
    if (process.platform === 'linux') {
      const dlopen = koffi.load('libc.so.6').func('void* dlopen(const char*, int)');
      dlopen(path, 0x2 | 0x1000); // RTLD_NOW | RTLD_NODELETE
    } else if (process.platform === 'darwin') {
      const dlopen = koffi.load('/usr/lib/libSystem.B.dylib').func('void* dlopen(const char*, int)');
      dlopen(path, 0x2 | 0x80); // RTLD_NOW | RTLD_NODELETE
    }
  } catch {
    // no libc by that name (musl): the library is unloaded at exit as before
  }
}

function tryFunc(lib: KoffiLib, decl: string): ((...args: unknown[]) => unknown) | null {
  try {
    return lib.func(decl);
  } catch {
    return null;
  }
}

/** Whether this CPU has AVX-512 (Linux: /proc/cpuinfo), for the OPENBLAS_CORETYPE note. */
function hasAvx512(): boolean {
  try {
    return process.platform === 'linux' && /\bavx512f\b/.test(readFileSync('/proc/cpuinfo', 'utf8').slice(0, 8192));
  } catch {
    return false;
  }
}

function openLibrary(koffi: Koffi, path: string): BlasLoad {
  let lib: KoffiLib;
  try {
    lib = koffi.load(path);
  } catch (e) {
    const msg = (e as Error).message.replace(/^Failed to load shared library: /, '');
    return { reason: `${path}: cannot load (${msg})` };
  }
  const raw = tryFunc(lib, 'void cblas_sgemm(int, int, int, int, int, int, float, intptr_t, int, intptr_t, int, float, intptr_t, int)');
  if (!raw) return { reason: `${path}: loads but has no cblas_sgemm` };
  pin(koffi, path);
  const sgemm: Sgemm = (tA, tB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc) =>
    void raw(101, tA ? 112 : 111, tB ? 112 : 111, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc); // CblasRowMajor, (No)Trans
  const notes: string[] = [];
  let kind = 'BLAS', info = '';
  let setThreads: Blas['setThreads'], getThreads: Blas['getThreads'];
  const obConfig = tryFunc(lib, 'const char* openblas_get_config()');
  const bliVersion = obConfig ? null : tryFunc(lib, 'const char* bli_info_get_version_str()');
  const mklVersion = obConfig || bliVersion ? null : tryFunc(lib, 'int MKL_Get_Version_String(char*, int)');
  if (obConfig) {
    kind = 'OpenBLAS';
    const core = tryFunc(lib, 'const char* openblas_get_corename()');
    info = `${String(obConfig()).trim()}${core ? `, core ${String(core())}` : ''}`;
    const set = tryFunc(lib, 'void openblas_set_num_threads(int)');
    const get = tryFunc(lib, 'int openblas_get_num_threads()');
    if (set) setThreads = (n) => void set(n);
    if (get) getThreads = () => get() as number;
    const forced = process.env['OPENBLAS_CORETYPE'];
    if (forced) {
      const older = hasAvx512() && !/skylakex|cooperlake|sapphirerapids/i.test(forced);
      notes.push(`OPENBLAS_CORETYPE=${forced} is set in the environment: OpenBLAS uses its ${forced} kernels` +
        `${older ? ' although this CPU has AVX-512 (its own kernels can be up to ~2× faster)' : ''}; llamatrain leaves it alone` +
        `${older ? ' — unset it for this command to let OpenBLAS pick the kernels for this CPU' : ''}`);
    }
  } else if (bliVersion) {
    kind = 'BLIS';
    info = `BLIS ${String(bliVersion())}`;
    const set = tryFunc(lib, 'void bli_thread_set_num_threads(int64_t)');
    const get = tryFunc(lib, 'int64_t bli_thread_get_num_threads()');
    if (set) setThreads = (n) => void set(n);
    if (get) getThreads = () => Number(get());
  } else if (mklVersion) {
    kind = 'MKL';
    const set = tryFunc(lib, 'void MKL_Set_Num_Threads(int)');
    const get = tryFunc(lib, 'int MKL_Get_Max_Threads()');
    if (set) setThreads = (n) => void set(n);
    if (get) getThreads = () => get() as number;
  } else if (/Accelerate/.test(path)) {
    kind = 'Accelerate';
  }
  return {
    blas: { kind, path, info, sgemm, notes, setThreads, getThreads, address: (v) => Number(koffi.address(v)) },
  };
}

/**
 * Loads with OMP_WAIT_POLICY=PASSIVE unless the user set it. OpenMP builds of a BLAS (Debian's default OpenBLAS) keep
 * their threads spinning after every parallel GEMM, on the cores the wasm pool's workers need for the next kernel
 * (measured: s15M 9–21% faster passive, bench/RESULTS.md). libgomp reads the variable once, when it loads, so it is
 * set only around the load: child processes and the user's other libraries do not see it.
 */
function withPassiveOpenMP<T>(load: () => T): T {
  if (process.env['OMP_WAIT_POLICY'] !== undefined) return load();
  process.env['OMP_WAIT_POLICY'] = 'PASSIVE';
  try {
    return load();
  } finally {
    delete process.env['OMP_WAIT_POLICY'];
  }
}

export interface FindBlasOptions {
  /** A library to load instead of searching (also: the LLAMATRAIN_BLAS environment variable). */
  library?: string;
}

/**
 * Loads the first BLAS that works: `library` or LLAMATRAIN_BLAS alone when set, else the platform's candidates.
 * Returns the library, or one line saying why none loaded.
 */
export async function findBlas(opts: FindBlasOptions = {}): Promise<BlasLoad> {
  const koffi = await loadKoffi();
  if (!koffi) return { reason: "the optional package 'koffi' (the FFI that reaches the system BLAS) is not installed: npm install koffi" };
  const override = opts.library ?? process.env['LLAMATRAIN_BLAS'];
  if (override) {
    const via = opts.library ? 'library option' : 'LLAMATRAIN_BLAS';
    if (override.includes('/') && !existsSync(override)) return { reason: `${via}=${override}: no such file` };
    const r = withPassiveOpenMP(() => openLibrary(koffi, override));
    return r.blas ? r : { reason: `${via}=${r.reason}` };
  }
  const tried: string[] = [];
  for (const c of blasCandidates()) {
    if (c.startsWith('/') && !existsSync(c)) continue;
    const r = withPassiveOpenMP(() => openLibrary(koffi, c));
    if (r.blas) return r;
    if (!/cannot load/.test(r.reason)) tried.push(r.reason);
  }
  const hint = process.platform === 'darwin' ? 'Accelerate did not load' : process.platform === 'linux'
    ? 'install one (Debian/Ubuntu: apt-get install libopenblas0)' : 'install OpenBLAS';
  return { reason: `no BLAS library found (${hint}; or set LLAMATRAIN_BLAS=/path/to/libopenblas.so)${tried.length ? `; ${tried.join('; ')}` : ''}` };
}
