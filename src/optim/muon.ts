// Muon (MomentUm Orthogonalized by Newton–Schulz; Keller Jordan, 2024) for the 2-D hidden weights, with AdamW for
// the parameters Muon is not meant for (embeddings, the LM head, norms) in the same optimizer — as people use it
// (the reference implementation's MuonWithAuxAdam): one parameter group list, `useMuon` per group.
//
// A Muon step for a matrix W [rows, cols] with gradient G and momentum buffer M (zeros at first), momentum β:
//   M ← M + (1 − β)·(G − M)                             (an exponential average: torch's M.lerp_(G, 1 − β))
//   U = G + β·(M − G) with Nesterov, else M
//   X = U / (‖U‖_F + 1e-7), transposed when rows > cols (so the Gram matrix is the smaller one)
//   nsSteps × { A = X·Xᵀ; B = b·A + c·A·A; X = a·X + B·X }   (a, b, c) = (3.4445, −4.7750, 2.0315)
//   W ← W·(1 − lr·wd) − lr · max(1, rows/cols)^½ · X  (X transposed back)
// The quintic iteration pushes every singular value of X towards ~1 (roughly 0.7–1.2: its coefficients trade exact
// convergence for speed), i.e. X ≈ the orthogonal factor U·Vᵀ of U's SVD.
//
// Scale: max(1, rows/cols)^½, the reference implementation's, chosen so that lr ~0.02 works for every shape and the
// known-good Muon learning rates carry over. (The alternative, 0.2·√max(rows, cols), matches AdamW's update RMS so
// that both can share one lr; with separate groups and lrs here there is no need for it.)
//
// On the device: muonMomentum (one multi-tensor kernel) lays the directions of all parameters of one shape out as a
// [k, rows, cols] stack; the Newton–Schulz iteration is composed from batched matmuls and elementwise ops on that
// stack (so every backend runs it where its GEMMs are — BLAS on native — with no read); muonStep (gated, in place)
// then updates the buffers and the weights. A NaN/Inf gate leaves weights and buffers untouched, as adamStep does.

import { Tensor, add, div, kernel, matmul, mul, noGrad, shapeStr, sqrt, square, sum, withScope } from '../core/index.js';
import { Optimizer, type ParamGroup, type ParamsInput } from './optimizer.js';

/** Coefficients of the quintic Newton–Schulz iteration (a, b, c). */
export const NS_COEFFICIENTS = [3.4445, -4.775, 2.0315] as const;

export interface MuonGroup extends ParamGroup {
  /** true: Muon (parameters of rank ≥ 2; higher ranks are flattened to [shape[0], rest]); false: AdamW. */
  useMuon: boolean;
  /** Muon's momentum β. */
  momentum: number;
  nesterov: boolean;
  /** Newton–Schulz iterations. */
  nsSteps: number;
  /** AdamW's betas and eps (groups with useMuon false). */
  betas: [number, number];
  eps: number;
}

export type MuonOptions = Partial<Omit<MuonGroup, 'params'>>;

/**
 * The orthogonalisation of a stack of matrices x [k, rows, cols] (or one [rows, cols]) by `steps` quintic
 * Newton–Schulz iterations, each matrix normalised by its Frobenius norm first; tall matrices are iterated on
 * their Gram matrix Xᵀ·X (the same as transposing, without a copy). Composed from ops: no gradient, no read.
 */
export function newtonSchulz(x: Tensor, steps: number): Tensor {
  if (x.rank !== 2 && x.rank !== 3) throw new RangeError(`newtonSchulz: expected [rows, cols] or [k, rows, cols], got ${shapeStr(x.shape)}`);
  const [a, b, c] = NS_COEFFICIENTS;
  const rows = x.shape[x.rank - 2]!, cols = x.shape[x.rank - 1]!;
  const tall = rows > cols;
  return noGrad(() => {
    const axes = x.rank === 3 ? [1, 2] : [0, 1];
    let X = div(x, add(sqrt(sum(square(x), axes, true)), 1e-7));
    for (let s = 0; s < steps; s++) {
      // wide: A = X·Xᵀ, X ← a·X + B·X; tall: A = Xᵀ·X, X ← a·X + X·Bᵀ (the transpose of the wide update of Xᵀ)
      const A = tall ? matmul(X, X, { transA: true }) : matmul(X, X, { transB: true });
      const B = add(mul(A, b), mul(matmul(A, A), c));
      X = add(mul(X, a), tall ? matmul(X, B, { transB: true }) : matmul(B, X));
    }
    return X;
  });
}

/** Muon with AdamW groups. Defaults: lr 0.02, momentum 0.95, Nesterov, 5 Newton–Schulz steps, no weight decay. */
export class Muon extends Optimizer<MuonGroup> {
  constructor(params: ParamsInput<MuonGroup>, opts: MuonOptions = {}) {
    super(params, { lr: 0.02, weightDecay: 0, momentum: 0.95, nesterov: true, nsSteps: 5, useMuon: true, betas: [0.9, 0.95], eps: 1e-8, ...opts });
  }

  protected override validateGroup(g: MuonGroup, gi: number): void {
    super.validateGroup(g, gi);
    if (g.useMuon) {
      if (!(g.momentum >= 0 && g.momentum < 1)) throw new RangeError(`Muon: group ${gi} momentum must be in [0, 1), got ${g.momentum}`);
      if (!(Number.isInteger(g.nsSteps) && g.nsSteps >= 1)) throw new RangeError(`Muon: group ${gi} nsSteps must be an integer ≥ 1, got ${g.nsSteps}`);
      for (const p of g.params) {
        if (p.rank < 2) {
          throw new RangeError(`Muon: group ${gi} has a parameter of shape ${shapeStr(p.shape)}; Muon updates matrices only — ` +
            'put vectors (norms, biases) in a group with useMuon: false (AdamW), or build the groups with muonParamGroups()');
        }
      }
    } else {
      const [b1, b2] = g.betas;
      if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new RangeError(`Muon: group ${gi} (AdamW) betas must be in [0, 1), got [${b1}, ${b2}]`);
      if (!(g.eps >= 0)) throw new RangeError(`Muon: group ${gi} (AdamW) eps must be ≥ 0, got ${g.eps}`);
    }
  }

  protected override stateBuffers(g: MuonGroup): readonly string[] {
    return g.useMuon ? ['momentumBuffer'] : ['expAvg', 'expAvgSq'];
  }

  protected updateGroup(g: MuonGroup, params: Tensor[], gate: Tensor | null): void {
    if (!g.useMuon) { this.adamW(g, params, gate); return; }
    params.forEach((p) => this.advance(p)); // the count is only bookkeeping (checkpoints, cancelStep)
    // one stack per matrix shape: q/o, k/v, gate/up and down of every layer are one Newton–Schulz run each
    const byShape = new Map<string, Tensor[]>();
    for (const p of params) {
      const key = `${p.shape[0]}x${p.size / p.shape[0]!}`;
      let list = byShape.get(key);
      if (!list) { list = []; byShape.set(key, list); }
      list.push(p);
    }
    for (const ps of byShape.values()) this.muonShape(g, ps, gate);
  }

  /** Muon over parameters of one shape [rows, cols] (one backend and dtype). */
  private muonShape(g: MuonGroup, ps: Tensor[], gate: Tensor | null): void {
    const be = ps[0]!.backend, dtype = ps[0]!.dtype;
    const rows = ps[0]!.shape[0]!, cols = ps[0]!.size / rows;
    const group = {
      params: ps.map((p) => p.storage), grads: ps.map((p) => p.grad!.storage),
      bufs: ps.map((p) => this.buffer(p, 'momentumBuffer').storage), sizes: ps.map((p) => p.size),
    };
    withScope(be, () => {
      const u = kernel(be, 'muonMomentum')(group, { momentum: g.momentum, nesterov: g.nesterov }, dtype);
      const stack = new Tensor(u, [ps.length, rows, cols], dtype, be); // [k, rows, cols]
      const o = newtonSchulz(stack, g.nsSteps);
      kernel(be, 'muonStep')(group, o.storage, {
        lr: g.lr, momentum: g.momentum, weightDecay: g.weightDecay, scale: Math.sqrt(Math.max(1, rows / cols)),
      }, gate ? gate.storage : null, dtype);
    });
  }

  /** The AdamW update (torch.optim.AdamW semantics, as AdamW) of a group with useMuon false. */
  private adamW(g: MuonGroup, params: Tensor[], gate: Tensor | null): void {
    const steps = params.map((p) => this.advance(p));
    const buffers = (name: string) => params.map((p) => this.buffer(p, name).storage);
    kernel(params[0]!.backend, 'adamStep')({
      params: params.map((p) => p.storage), grads: params.map((p) => p.grad!.storage),
      m: buffers('expAvg'), v: buffers('expAvgSq'), vMax: null, sizes: params.map((p) => p.size), steps,
    }, {
      lr: g.lr, beta1: g.betas[0], beta2: g.betas[1], eps: g.eps, weightDecay: g.weightDecay, decoupled: true, amsgrad: false,
    }, gate ? gate.storage : null, params[0]!.dtype);
  }
}

export interface MuonParamGroupsOptions {
  /** Muon's lr (hidden matrices). Default 0.02. */
  muonLr?: number;
  /** Decoupled weight decay of the hidden matrices. Default 0. */
  muonWeightDecay?: number;
  /** AdamW's lr (embeddings, LM head, norms). Default 3e-3. */
  adamLr?: number;
  /** AdamW's decoupled weight decay of the embeddings and an untied LM head (norms and biases get none). Default 0. */
  adamWeightDecay?: number;
  betas?: [number, number];
  eps?: number;
}

/**
 * Parameter groups for Muon as it is used: the 2-D hidden weights (attention and MLP projections) → Muon; the
 * token embeddings and the LM head (matrices, but an embedding's rows are not a linear map's and the head's
 * gradient is dominated by a few tokens) and every vector (norms, biases) → AdamW. Takes named parameters
 * (`model.namedParameters()`, HF names). Empty groups are left out.
 */
export function muonParamGroups(named: Iterable<[string, Tensor]>, opts: MuonParamGroupsOptions = {}): (Partial<MuonGroup> & { params: Tensor[] })[] {
  const hidden: Tensor[] = [], embed: Tensor[] = [], vectors: Tensor[] = [];
  for (const [name, p] of named) {
    if (p.rank < 2) vectors.push(p);
    else if (name.endsWith('embed_tokens.weight') || name.endsWith('lm_head.weight')) embed.push(p);
    else hidden.push(p);
  }
  const adam = { useMuon: false, lr: opts.adamLr ?? 3e-3, betas: opts.betas ?? [0.9, 0.95] as [number, number], eps: opts.eps ?? 1e-8 };
  return [
    { params: hidden, useMuon: true, lr: opts.muonLr ?? 0.02, weightDecay: opts.muonWeightDecay ?? 0 },
    { params: embed, ...adam, weightDecay: opts.adamWeightDecay ?? 0 },
    { params: vectors, ...adam, weightDecay: 0 },
  ].filter((g) => g.params.length > 0);
}
