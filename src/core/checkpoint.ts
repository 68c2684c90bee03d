// Activation checkpointing (recomputation): checkpoint(fn, inputs) computes fn(...inputs) without keeping what fn
// makes on the way — only its inputs and its output stay — and records one tape node. Its backward runs fn again
// on the same inputs, this time recording, backpropagates the incoming gradient through that local graph
// (parameters accumulate into .grad as in any backward) and frees the recomputed activations at once. A decoder
// layer's activations then live only while its own backward runs: the step's peak holds one layer's activations
// plus every layer's input, instead of every layer's activations. It costs one more forward per checkpoint.
//
// The recomputation runs the same kernels on the same values in the same order, so losses and gradients are the
// ones of the plain graph (bit for bit on the CPU backends: the conformance suite checks it). Random draws inside
// fn (LoRA dropout) replay: a random source calls recordRandomState(rng) before drawing, the forward saves its
// state, and the recomputation restores it for fn's draws (and puts the source back where it was afterwards).

import { openScope } from './scope.js';
import { InputError } from './errors.js';
import { Tensor, backwardTo, enableGrad, isGradEnabled, makeResult, noGrad, watchGradInputs } from './tensor.js';
import { shapeStr } from './dtype.js';

/** A random source whose draws a checkpointed function may make (core/rng.ts's RNG is one). */
export interface RandomState {
  getState(): number[];
  setState(state: readonly number[]): void;
}

/** The forwards of checkpointed functions under way, innermost last: each source they drew from → its state before. */
const frames: Map<RandomState, number[]>[] = [];

/**
 * Call before drawing from `rng` in code that may run inside checkpoint(): the first draw in a checkpointed forward
 * saves the source's state, so that the recomputation in backward draws the same numbers. Costs nothing elsewhere.
 */
export function recordRandomState(rng: RandomState): void {
  for (const f of frames) if (!f.has(rng)) f.set(rng, rng.getState());
}

/**
 * y = fn(...inputs), recomputed in backward instead of kept (torch.utils.checkpoint without reentrancy).
 *
 * - `fn` must be synchronous and a function of its inputs, of parameters (leaves), of tensors that need no gradient
 *   and of random sources that call recordRandomState. It must not dispose its inputs, and what it makes besides
 *   its output is freed when it returns (no caches, no KV cache). A tensor fn reads that requires grad and was
 *   computed by an op outside fn must be one of `inputs` (else an InputError: the recomputation could not reach it).
 * - The parameters fn uses are found as it runs (every tensor requiring grad that an op reads); they get their
 *   gradient in backward (frozen ones, `requiresGrad = false`, none). There is no list to keep up to date.
 * - Without grad mode (noGrad, evaluation, generation) it is just fn(...inputs).
 */
export function checkpoint(fn: (...inputs: Tensor[]) => Tensor, inputs: readonly Tensor[]): Tensor {
  if (inputs.length === 0) {
    throw new InputError('checkpoint: no input tensors were given; pass the tensors fn reads that come from earlier ops (e.g. a layer\'s input)',
      { source: 'checkpoint()' });
  }
  if (!isGradEnabled()) return fn(...inputs);
  const backend = inputs[0]!.backend;
  const random = new Map<RandomState, number[]>();
  const used = new Set<Tensor>();
  // fn's intermediates are freed when it returns: nothing records them, and the scope gives back their memory now
  // rather than at the end of the step
  const scope = openScope(backend);
  frames.push(random);
  let out: Tensor;
  try {
    out = watchGradInputs((t) => used.add(t), () => noGrad(() => fn(...inputs)));
    if (!(out instanceof Tensor)) throw new InputError(`checkpoint: fn must return a Tensor synchronously, got ${String(out)}`, { source: 'checkpoint()' });
  } catch (e) {
    scope.close();
    throw e;
  } finally {
    frames.pop();
  }
  scope.close(out);
  const given = new Set(inputs);
  const params: Tensor[] = [];
  for (const t of used) {
    if (given.has(t)) continue;
    if (!t.isLeaf) {
      throw new InputError(`checkpoint: fn reads ${t.toString()}, which an op outside fn computed with grad; pass it in inputs ` +
        '(the recomputation backpropagates only into its inputs and the parameters it uses)', { source: 'checkpoint()' });
    }
    params.push(t);
  }
  if (!inputs.some((x) => x.requiresGrad) && params.length === 0) return out; // nothing to differentiate
  const outShape = out.shape;
  return makeResult(out.storage, out.shape, out.dtype, out.backend, {
    name: 'checkpoint',
    freshGrads: true, // the inputs' gradients are buffers backwardTo hands over
    inputs: [...inputs, ...params], // params: so that the engine reaches this node when only they require grad
    backward: (g) => {
      // the recomputation and its backward in one scope: closing it frees the recomputed activations and the
      // local gradients; the inputs' gradients move to the enclosing scope, parameters' .grad are kept tensors
      const local = openScope(backend);
      let grads: (Tensor | null)[];
      try {
        const xs = inputs.map((x) => (x.requiresGrad ? x.detach().requireGrad() : x));
        const now = [...random].map(([rng, before]) => { const s = rng.getState(); rng.setState(before); return [rng, s] as const; });
        let y: Tensor;
        try {
          y = enableGrad(() => fn(...xs));
        } finally {
          for (const [rng, s] of now) rng.setState(s);
        }
        if (!y.requiresGrad || y.shape.length !== outShape.length || y.shape.some((d, i) => d !== outShape[i])) {
          throw new Error(`internal: checkpoint: the recomputation gave ${y.toString()}, the forward ${shapeStr(outShape)} with grad ` +
            '(does fn depend on something that changed between forward and backward?)');
        }
        const wrt = xs.filter((_x, i) => inputs[i]!.requiresGrad);
        const got = backwardTo(y, g, wrt);
        let j = 0;
        grads = inputs.map((x) => (x.requiresGrad ? got[j++]! : null));
      } catch (e) {
        local.close();
        throw e;
      }
      local.close(...grads.filter((t): t is Tensor => t !== null));
      return [...grads, ...params.map(() => null)];
    },
  });
}
