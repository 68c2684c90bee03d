// Every export of the kernels module (assembly/index.ts), described once: its kind and its parameters, in order.
// The pool's list of dispatchable exports, the runtime's typed `run` / `query` / `table`, and the argument order
// of every call are derived from this table, so adding a kernel is one entry here plus its AssemblyScript. A test
// checks the table against the compiled module (names and parameter counts).
//
//   parallel: true   fn(tid, nth, ...args): run on the thread pool, each thread taking its share
//   parallel: false  fn(...args): a query run on the caller (sizes, addresses)
//   row              multi-tensor kernels: the fields (i32 each) of one row of the table passed as `table`

export interface ExportSpec {
  readonly parallel: boolean;
  readonly args: readonly string[];
  readonly row?: readonly string[];
}

export const EXPORTS = {
  heapBase: { parallel: false, args: [] },
  gemmScratchBytes: { parallel: false, args: [] },
  attentionBlockBytes: { parallel: false, args: ['S'] },

  gemm: { parallel: true, args: ['transA', 'transB', 'M', 'N', 'K', 'a', 'lda', 'b', 'ldb', 'c', 'ldc', 'scratch', 'acc', 'bHalf'] },
  halfToF32: { parallel: true, args: ['src', 'srcStride', 'dst', 'rows', 'cols', 'kind'] },
  gatherRowsHalf: { parallel: true, args: ['w', 'ids', 'out', 'N', 'V', 'C', 'kind'] },
  attention: {
    parallel: true,
    args: ['q', 'k', 'v', 'out', 'lse', 'B', 'T', 'S', 'NH', 'NKV', 'HD', 'scale', 'causal', 'qOffset', 'window', 'keyMask',
      'docIds', 'scratch', 'gemmScratch', 'hostShare'],
  },
  attentionBackward: {
    parallel: true,
    args: ['q', 'k', 'v', 'out', 'lse', 'g', 'dq', 'dk', 'dv', 'B', 'T', 'S', 'NH', 'NKV', 'HD', 'scale', 'causal', 'qOffset',
      'window', 'keyMask', 'docIds', 'scratch', 'gemmScratch', 'hostShare'],
  },

  crossEntropy: { parallel: true, args: ['z', 'targets', 'loss', 'lse', 'N', 'V', 'ignoreIndex', 'eps', 'zLoss'] },
  crossEntropyBackward: { parallel: true, args: ['z', 'lse', 'targets', 'g', 'dz', 'N', 'V', 'ignoreIndex', 'eps', 'zLoss'] },
  crossEntropyChunk: {
    parallel: true,
    args: ['z', 'targets', 'loss', 'rowScale', 'scale', 'n0', 'rows', 'V', 'ignoreIndex', 'eps', 'zLoss', 'wantGrad'],
  },

  rmsNorm: { parallel: true, args: ['x', 'w', 'y', 'rstd', 'rows', 'C', 'eps'] },
  rmsNormBackward: { parallel: true, args: ['x', 'w', 'rstd', 'g', 'dx', 'dwPart', 'dwOut', 'counter', 'rows', 'C'] },
  rope: { parallel: true, args: ['x', 'out', 'positions', 'cosT', 'sinT', 'BT', 'H', 'HD'] },
  gatherRows: { parallel: true, args: ['w', 'ids', 'out', 'N', 'V', 'C'] },
  scatterAddRows: { parallel: true, args: ['g', 'ids', 'dw', 'N', 'V', 'C', 'zero'] },

  binary: { parallel: true, args: ['op', 'a', 'b', 'out', 'n', 'bScalar'] },
  silu: { parallel: true, args: ['x', 'out', 'n'] },
  siluBackward: { parallel: true, args: ['x', 'g', 'out', 'n'] },
  swiglu: { parallel: true, args: ['a', 'b', 'out', 'n'] },
  swigluBackward: { parallel: true, args: ['a', 'b', 'g', 'da', 'db', 'n'] },
  square: { parallel: true, args: ['x', 'out', 'n'] },
  clamp: { parallel: true, args: ['x', 'out', 'n', 'lo', 'hi'] },
  clampBackward: { parallel: true, args: ['x', 'g', 'out', 'n', 'lo', 'hi'] },
  sumAll: { parallel: true, args: ['x', 'n', 'partial', 'counter', 'out'] },

  globalNorm: { parallel: true, args: ['table', 'count', 'total', 'inf', 'partial', 'counter', 'out'], row: ['x', 'n'] },
  clipByNorm: { parallel: true, args: ['table', 'count', 'total', 'norm', 'maxNorm'], row: ['x', 'n'] },
  adamStep: {
    parallel: true,
    args: ['table', 'count', 'total', 'gate', 'lr', 'beta1', 'beta2', 'eps', 'wd', 'decoupled'],
    row: ['p', 'g', 'm', 'v', 'n', 'step'],
  },
  sgdStep: {
    parallel: true,
    args: ['table', 'count', 'total', 'gate', 'lr', 'momentum', 'dampening', 'nesterov', 'wd'],
    row: ['p', 'g', 'buf', 'n', 'firstStep'],
  },
} as const satisfies Record<string, ExportSpec>;

type Table = typeof EXPORTS;
export type ExportName = keyof Table;
/** Exports the pool dispatches: fn(tid, nth, ...args). */
export type ParallelExport = { [K in ExportName]: Table[K]['parallel'] extends true ? K : never }[ExportName];
/** Exports called once on the caller: fn(...args) → number. */
export type QueryExport = Exclude<ExportName, ParallelExport>;
/** Multi-tensor exports (their first argument is a table of rows). */
export type TableExport = { [K in ExportName]: Table[K] extends { row: readonly string[] } ? K : never }[ExportName];

/** The named arguments of an export (booleans as 0 / 1, addresses and sizes as numbers). */
export type ArgsOf<K extends ExportName> = { readonly [A in Table[K]['args'][number]]: number };
/** One row of a multi-tensor export's table. */
export type RowOf<K extends TableExport> = { readonly [F in Table[K]['row'][number]]: number };

/** Names of the exports the pool dispatches, in table order (a worker's function index is a position here). */
export const PARALLEL_EXPORTS: readonly ParallelExport[] =
  (Object.keys(EXPORTS) as ExportName[]).filter((k): k is ParallelExport => EXPORTS[k].parallel);

/** Parameters of an export's wasm function (the tid, nth of a parallel one included): what the module must declare. */
export function arity(name: ExportName): number {
  const spec: ExportSpec = EXPORTS[name];
  return spec.args.length + (spec.parallel ? 2 : 0);
}
