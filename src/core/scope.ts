// Step scopes: explicit lifetimes for backends whose storages live outside the JS heap (the wasm backend keeps
// tensors in its WebAssembly.Memory, which the GC cannot see). Activations live for one step;
// parameters, gradients and optimizer state persist.
//
//   const scope = openScope(model.backend);
//   try { forward; backward; optimizer step } finally { scope.close(); }
//
// Everything the backend allocated between open and close is released at close, except storages of tensors
// marked with keep() (parameters, gradients, optimizer state) and those passed to close(), which move to the
// enclosing scope (or, with none, back to GC management). A released tensor throws on every later use.
// Backends without resident memory (ref) only do the bookkeeping of keep/dispose.
//
// Scopes nest as a stack per backend: a scope held open across `await` works as long as the scopes opened in
// between (by other interleaved work on the same backend) are closed before it — run one training loop per backend.

import type { Backend, Storage } from './backend.js';

/** What a scope needs of a tensor (tensor.ts imports this module, so not the class itself). */
interface HasStorage { readonly storage: Storage }

/** Storages released by a scope or dispose(): using a tensor that holds one is an error. */
const released = new WeakSet<Storage>();

export function isReleased(s: Storage): boolean {
  return released.has(s);
}

/** Marks storages released (the backend has freed their memory, or they were disposed). */
export function markReleased(list: Iterable<Storage>): void {
  for (const s of list) released.add(s);
}

export interface Scope {
  /** Releases what the backend allocated since open, except the storages of `keep` (and of kept tensors). */
  close(...keep: HasStorage[]): void;
}

const noop: Scope = { close: () => {} };

/** Opens a scope on `backend` (a no-op scope for backends whose memory the GC manages). Close it in a finally. */
export function openScope(backend: Backend): Scope {
  const mem = backend.memory;
  if (!mem) return noop;
  const depth = mem.openScope();
  let closed = false;
  return {
    close(...keep: HasStorage[]) {
      if (closed) return;
      closed = true;
      markReleased(mem.closeScope(depth, new Set(keep.map((t) => t.storage))));
    },
  };
}

/**
 * Runs fn inside a scope; the tensors it returns (a tensor, or an array / object of tensors) survive. An async fn
 * keeps the scope open until its promise settles (the tensors it resolves to survive).
 */
export function withScope<T>(backend: Backend, fn: () => T): T {
  const scope = openScope(backend);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scope.close();
    throw e;
  }
  if (result instanceof Promise) {
    return result.then(
      (r: unknown) => { scope.close(...tensorsIn(r)); return r; },
      (e: unknown) => { scope.close(); throw e; },
    ) as T;
  }
  scope.close(...tensorsIn(result));
  return result;
}

function tensorsIn(x: unknown): HasStorage[] {
  if (isTensorLike(x)) return [x];
  if (x === null || typeof x !== 'object') return [];
  return (Array.isArray(x) ? x : Object.values(x)).filter(isTensorLike);
}

function isTensorLike(v: unknown): v is HasStorage {
  return v !== null && typeof v === 'object' && 'storage' in v && 'shape' in v && 'backend' in v;
}
