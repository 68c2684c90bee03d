// Muon against a float64 reference written here from the published algorithm (Keller Jordan's Muon: momentum as an
// exponential average, Nesterov, the quintic Newton–Schulz iteration on the Frobenius-normalised update with tall
// matrices transposed, scale max(1, rows/cols)^½, decoupled weight decay). The reference transposes tall matrices
// explicitly and multiplies plain arrays; the library iterates tall ones on Xᵀ·X and runs batched matmuls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdamW, LlamaForCausalLM, Muon, RNG, type Tensor, keep, muonParamGroups, newtonSchulz, tensor,
} from '../../src/index.js';
import { relErr } from '../helpers.js';

type Mat = { r: number; c: number; d: number[] }; // row-major

const matmulRef = (a: Mat, b: Mat): Mat => {
  assert.equal(a.c, b.r);
  const d = new Array<number>(a.r * b.c).fill(0);
  for (let i = 0; i < a.r; i++) for (let k = 0; k < a.c; k++) {
    const x = a.d[i * a.c + k]!;
    for (let j = 0; j < b.c; j++) d[i * b.c + j]! += x * b.d[k * b.c + j]!;
  }
  return { r: a.r, c: b.c, d };
};
const transposeRef = (a: Mat): Mat => {
  const d = new Array<number>(a.r * a.c);
  for (let i = 0; i < a.r; i++) for (let j = 0; j < a.c; j++) d[j * a.r + i] = a.d[i * a.c + j]!;
  return { r: a.c, c: a.r, d };
};
const lin = (x: Mat, s: number, y: Mat, t: number): Mat => ({ r: x.r, c: x.c, d: x.d.map((v, i) => s * v + t * y.d[i]!) });

/** zeropower_via_newtonschulz5 in float64: normalise, transpose if tall, iterate, transpose back. */
function newtonSchulzRef(g: Mat, steps: number): Mat {
  const [a, b, c] = [3.4445, -4.775, 2.0315];
  const tall = g.r > g.c;
  let X = tall ? transposeRef(g) : { ...g, d: [...g.d] };
  const norm = Math.sqrt(X.d.reduce((s, v) => s + v * v, 0));
  X = { ...X, d: X.d.map((v) => v / (norm + 1e-7)) };
  for (let s = 0; s < steps; s++) {
    const A = matmulRef(X, transposeRef(X));
    const B = lin(A, b, matmulRef(A, A), c);
    X = lin(X, a, matmulRef(B, X), 1);
  }
  return tall ? transposeRef(X) : X;
}

interface RefOpts { lr: number; momentum: number; nesterov: boolean; nsSteps: number; weightDecay: number }

/** One Muon step of one matrix in float64; p and buf change in place. */
function muonStepRef(p: Mat, grad: Mat, buf: number[], o: RefOpts): void {
  for (let i = 0; i < buf.length; i++) buf[i] = buf[i]! + (1 - o.momentum) * (grad.d[i]! - buf[i]!); // buf.lerp_(g, 1 − β)
  const u: Mat = { r: grad.r, c: grad.c, d: o.nesterov ? grad.d.map((g, i) => g + o.momentum * (buf[i]! - g)) : [...buf] };
  const x = newtonSchulzRef(u, o.nsSteps);
  const scale = Math.sqrt(Math.max(1, p.r / p.c));
  for (let i = 0; i < p.d.length; i++) p.d[i] = p.d[i]! * (1 - o.lr * o.weightDecay) - o.lr * scale * x.d[i]!;
}

// wide, tall, square, and two of one shape (stacked into one Newton–Schulz run by the library)
const SHAPES: [number, number][] = [[6, 10], [12, 5], [7, 7], [6, 10], [3, 16]];
const STEPS = 5;

function runBoth(o: Omit<RefOpts, 'lr'>, dtype: 'float32' | 'float64') {
  const rng = new RNG(11);
  const rand = (n: number) => Array.from({ length: n }, () => rng.normal());
  const p0 = SHAPES.map(([r, c]) => rand(r * c).map((v) => v * 0.3));
  const grads = Array.from({ length: STEPS }, () => SHAPES.map(([r, c]) => rand(r * c)));
  const lrs = [0.02, 0.03, 0.025, 0.01, 0.015]; // changed between steps, as a schedule does
  // reference
  const ref = SHAPES.map(([r, c], i) => ({ p: { r, c, d: [...p0[i]!] }, buf: new Array<number>(r * c).fill(0) }));
  for (let s = 0; s < STEPS; s++) {
    ref.forEach((m, i) => muonStepRef(m.p, { r: m.p.r, c: m.p.c, d: grads[s]![i]! }, m.buf, { ...o, lr: lrs[s]! }));
  }
  // library
  const ps = SHAPES.map((sh, i) => keep(tensor(p0[i]!, sh, dtype).requireGrad()));
  const opt = new Muon(ps, { ...o, lr: lrs[0] });
  for (let s = 0; s < STEPS; s++) {
    opt.paramGroups[0]!.lr = lrs[s]!;
    ps.forEach((p, i) => { p.grad = keep(tensor(grads[s]![i]!, SHAPES[i]!, dtype)); });
    opt.step();
  }
  return { ref, ps, p0 };
}

for (const nesterov of [true, false]) {
  for (const weightDecay of [0, 0.1]) {
    const o = { momentum: 0.95, nesterov, nsSteps: 5, weightDecay };
    test(`Muon equals the float64 reference after ${STEPS} steps (nesterov ${nesterov}, weight decay ${weightDecay})`, () => {
      // float64 (ref backend): the whole update, not just the weights, agrees to rounding
      {
        const { ref, ps, p0 } = runBoth(o, 'float64');
        ps.forEach((p, i) => {
          const got = p.dataSync(), want = ref[i]!.p.d;
          const dGot = Array.from(got, (v, j) => v - p0[i]![j]!), dWant = want.map((v, j) => v - p0[i]![j]!);
          const e = relErr(dGot, dWant);
          assert.ok(e <= 1e-10, `float64 ${SHAPES[i]}: change of the weights rel err ${e}`);
        });
      }
      // float32: ≤ 1e-5 relative
      {
        const { ref, ps } = runBoth(o, 'float32');
        ps.forEach((p, i) => {
          const e = relErr(p.dataSync(), ref[i]!.p.d);
          assert.ok(e <= 1e-5, `float32 ${SHAPES[i]}: weights rel err ${e}`);
        });
      }
    });
  }
}

test('newtonSchulz orthogonalises: singular values of the result lie in the quintic iteration\'s band (~0.7–1.2)', () => {
  const rng = new RNG(3);
  for (const [r, c] of [[8, 20], [20, 8]] as const) {
    const g = tensor(Float64Array.from({ length: r * c }, () => rng.normal()), [r, c], 'float64');
    const x = newtonSchulz(g, 5).dataSync();
    // eigenvalues of the small Gram matrix = squared singular values; check via its trace and that X·Xᵀ ≈ I in norm
    const m: Mat = { r, c, d: Array.from(x) };
    const gram = r <= c ? matmulRef(m, transposeRef(m)) : matmulRef(transposeRef(m), m);
    const k = Math.min(r, c);
    const diag = Array.from({ length: k }, (_, i) => gram.d[i * k + i]!);
    // singular values in [0.7, 1.2] bound the Gram matrix's diagonal to [0.49, 1.44] and its off-diagonal to (1.44 − 0.49)/2
    for (const v of diag) assert.ok(v >= 0.49 && v <= 1.44, `Gram diagonal ${v} (rows of an orthogonal factor have norm ≈ 1)`);
    let off = 0;
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) if (i !== j) off = Math.max(off, Math.abs(gram.d[i * k + j]!));
    assert.ok(off <= 0.475, `Gram off-diagonal ${off}`);
    // and the library agrees with the reference iteration
    const want = newtonSchulzRef({ r, c, d: Array.from(g.dataSync()) }, 5).d;
    assert.ok(relErr(x, want) <= 1e-12, 'newtonSchulz vs float64 reference');
  }
});

test('a NaN gate leaves weights and momentum untouched; cancelStep restores the step counts', async () => {
  const rng = new RNG(4);
  const p = keep(tensor(Float32Array.from({ length: 24 }, () => rng.normal()), [4, 6]).requireGrad());
  const opt = new Muon([p], { lr: 0.02 });
  p.grad = keep(tensor(Float32Array.from({ length: 24 }, () => rng.normal()), [4, 6]));
  opt.step();
  const sd0 = await opt.stateDict();
  const w0 = Array.from(p.dataSync());
  opt.step({ gate: tensor(NaN, []) });
  opt.cancelStep();
  assert.deepEqual(Array.from(p.dataSync()), w0);
  const sd1 = await opt.stateDict();
  assert.equal(sd1.state[0]!.step, 1);
  assert.deepEqual(Array.from((sd1.state[0]!.momentumBuffer as { data: Float32Array }).data), Array.from((sd0.state[0]!.momentumBuffer as { data: Float32Array }).data));
  opt.step({ gate: tensor(0.5, []) });
  assert.notDeepEqual(Array.from(p.dataSync()), w0, 'a finite gate lets the update through');
});

test('Muon state dict round trip continues bit-identically', async () => {
  const rng = new RNG(9);
  const shapes: number[][] = [[5, 8], [8, 5], [3]];
  const init = shapes.map((s) => Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => rng.normal()));
  const grads = Array.from({ length: 6 }, () => init.map((x) => Float32Array.from({ length: x.length }, () => rng.normal())));
  const make = (ps: Tensor[]) => new Muon([{ params: ps.slice(0, 2) }, { params: ps.slice(2), useMuon: false, lr: 1e-2, weightDecay: 0 }], { lr: 0.03, weightDecay: 0.05 });
  const run = async (resumeAt: number | null) => {
    let ps = init.map((x, i) => keep(tensor(x, shapes[i]!).requireGrad()));
    let opt = make(ps);
    for (let k = 0; k < 6; k++) {
      if (k === resumeAt) {
        const sd = await opt.stateDict();
        ps = ps.map((p) => keep(tensor(p.dataSync(), p.shape).requireGrad()));
        opt = make(ps);
        opt.loadStateDict(sd);
      }
      ps.forEach((p, i) => { p.grad = keep(tensor(grads[k]![i]!, p.shape)); });
      opt.step();
    }
    return ps.flatMap((p) => Array.from(p.dataSync()));
  };
  assert.deepEqual(await run(3), await run(null));
});

test('muonParamGroups: hidden matrices to Muon; embeddings, head and norms to AdamW', () => {
  for (const tie of [true, false]) {
    const model = new LlamaForCausalLM({ vocabSize: 40, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 2, numAttentionHeads: 4,
      numKeyValueHeads: 2, tieWordEmbeddings: tie });
    const groups = muonParamGroups(model.namedParameters(), { muonLr: 0.03, adamLr: 4e-3, adamWeightDecay: 0.1 });
    const names = new Map([...model.namedParameters()].map(([n, p]) => [p, n]));
    const [hidden, embed, vectors] = groups.map((g) => g.params.map((p) => names.get(p)!));
    assert.equal(hidden!.length, 2 * 7, 'q, k, v, o, gate, up, down of each layer');
    assert.ok(hidden!.every((n) => /layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/.test(n)), hidden!.join());
    assert.deepEqual(embed, tie ? ['model.embed_tokens.weight'] : ['model.embed_tokens.weight', 'lm_head.weight']);
    assert.ok(vectors!.every((n) => n.endsWith('norm.weight')) && vectors!.length === 2 * 2 + 1, vectors!.join());
    assert.deepEqual(groups.map((g) => [g.useMuon, g.lr, g.weightDecay]), [[true, 0.03, 0], [false, 4e-3, 0.1], [false, 4e-3, 0]]);
    const opt = new Muon(groups);
    assert.equal(opt.paramGroups.length, 3);
  }
});

test('Muon groups with useMuon false are AdamW (torch.optim.AdamW semantics, as the AdamW class)', () => {
  const rng = new RNG(5);
  const x0 = Float64Array.from({ length: 30 }, () => rng.normal());
  const gs = Array.from({ length: 4 }, () => Float64Array.from({ length: 30 }, () => rng.normal()));
  const a = keep(tensor(x0, [30], 'float64').requireGrad()), b = keep(tensor(x0, [30], 'float64').requireGrad());
  const oa = new Muon([{ params: [a], useMuon: false }], { lr: 1e-2, weightDecay: 0.1, betas: [0.9, 0.95], eps: 1e-8 });
  const ob = new AdamW([b], { lr: 1e-2, weightDecay: 0.1, betas: [0.9, 0.95], eps: 1e-8 });
  for (const g of gs) {
    a.grad = keep(tensor(g, [30], 'float64')); b.grad = keep(tensor(g, [30], 'float64'));
    oa.step(); ob.step();
  }
  assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
});

test('Muon refuses vectors in a Muon group and bad hyper-parameters, with a hint', () => {
  const v = keep(tensor(new Float32Array(4), [4]).requireGrad());
  assert.throws(() => new Muon([v]), /Muon updates matrices only.*useMuon: false.*muonParamGroups/);
  const m = keep(tensor(new Float32Array(4), [2, 2]).requireGrad());
  assert.throws(() => new Muon([m], { momentum: 1 }), /momentum must be in \[0, 1\)/);
  assert.throws(() => new Muon([m], { nsSteps: 0 }), /nsSteps must be an integer ≥ 1/);
});
