// Optimizers, clipping and schedules against PyTorch (tools/pyref/make_optim_cases.py, float64).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  Adam, AdamW, LRScheduler, type Optimizer, SGD, type Schedule, type Tensor, clipGradNorm, clipGradValue, constantSchedule,
  parseSafetensors, product, sequence, stepSchedule, tensor, warmupCosine, warmupLinear, wsd, linearWarmup,
} from '../../src/index.js';
import { relErr as maxRelErr } from '../helpers.js';
import { fixturePath } from '../helpers.js';

const meta = JSON.parse(readFileSync(fixturePath('optim-cases', 'cases.json'), 'utf8'));
const data = parseSafetensors(readFileSync(fixturePath('optim-cases', 'cases.safetensors'))).tensors;
const T = (k: string): Tensor => { const r = data.get(k); assert.ok(r, `fixture tensor ${k}`); return tensor(r.data, r.shape, r.dtype); };

type Kw = Record<string, unknown>;
function build(c: { name: string; optimizer: string; kwargs: Kw; param_groups_spec: Kw[] | null }, p0: Tensor, p1: Tensor): Optimizer {
  const kw = c.kwargs;
  const common = {
    ...(kw.lr !== undefined ? { lr: kw.lr as number } : {}),
    ...(kw.weight_decay !== undefined ? { weightDecay: kw.weight_decay as number } : {}),
  };
  const params = c.param_groups_spec
    ? c.param_groups_spec.map((g) => ({ params: [(g.params as string[])[0] === 'p0' ? p0 : p1], lr: g.lr as number, weightDecay: g.weight_decay as number }))
    : [p0, p1];
  switch (c.optimizer) {
    case 'torch.optim.SGD':
      return new SGD(params, { lr: kw.lr as number, ...common, momentum: (kw.momentum as number) ?? 0, dampening: (kw.dampening as number) ?? 0, nesterov: (kw.nesterov as boolean) ?? false });
    case 'torch.optim.Adam':
    case 'torch.optim.AdamW': {
      const o = { ...common, betas: kw.betas as [number, number], eps: kw.eps as number, amsgrad: (kw.amsgrad as boolean) ?? false };
      return c.optimizer === 'torch.optim.Adam' ? new Adam(params, o) : new AdamW(params, o);
    }
  }
  throw new Error(`unknown optimizer ${c.optimizer}`);
}

for (const c of meta.optimizer.cases) {
  test(`optimizer equals PyTorch: ${c.name}`, () => {
    const p0 = T(`${c.name}.init.p0`).requireGrad(), p1 = T(`${c.name}.init.p1`).requireGrad();
    const opt = build(c, p0, p1);
    for (let k = 0; k < meta.optimizer.steps; k++) {
      opt.paramGroups.forEach((g, gi) => { g.lr = c.lr_per_step[k][gi]; }); // writable lr, as in PyTorch
      p0.grad = T(`${c.name}.grad.${k}.p0`); p1.grad = T(`${c.name}.grad.${k}.p1`);
      opt.step();
      assert.ok(maxRelErr(p0.dataSync(), data.get(`${c.name}.after.${k}.p0`)!.data) < 1e-12, `${c.name} step ${k} p0`);
      assert.ok(maxRelErr(p1.dataSync(), data.get(`${c.name}.after.${k}.p1`)!.data) < 1e-12, `${c.name} step ${k} p1`);
    }
  });
}

test('optimizer state dict round trip continues identically', async () => {
  const c = meta.optimizer.cases.find((x: { name: string }) => x.name === 'adamw_amsgrad');
  const run = async (resumeAt: number | null) => {
    let p0 = T(`${c.name}.init.p0`).requireGrad(), p1 = T(`${c.name}.init.p1`).requireGrad();
    let opt = build(c, p0, p1);
    for (let k = 0; k < 6; k++) {
      if (k === resumeAt) {
        const sd = JSON.parse(JSON.stringify(await opt.stateDict(), (_k, v) => (ArrayBuffer.isView(v) ? Array.from(v as Float64Array) : v)));
        for (const st of Object.values(sd.state) as Record<string, { data: number[] } | number>[]) {
          for (const v of Object.values(st)) if (typeof v !== 'number') (v as unknown as { data: Float64Array }).data = Float64Array.from(v.data);
        }
        const [q0, q1] = [tensor(p0.dataSync(), [3, 4], 'float64').requireGrad(), tensor(p1.dataSync(), [5], 'float64').requireGrad()];
        opt = build(c, q0, q1); opt.loadStateDict(sd); p0 = q0; p1 = q1;
      }
      p0.grad = T(`${c.name}.grad.${k}.p0`); p1.grad = T(`${c.name}.grad.${k}.p1`);
      opt.step();
    }
    return [...p0.dataSync(), ...p1.dataSync()];
  };
  assert.deepEqual(await run(3), await run(null));
});

for (const c of meta.clip.cases) {
  test(`clipping equals PyTorch: ${c.name}`, async () => {
    const ps = [0, 1, 2].map((i) => { const g = T(`${c.name}.in.${i}`); const p = tensor(new Float64Array(g.size), [...g.shape], 'float64').requireGrad(); p.grad = g; return p; });
    if (c.function === 'torch.nn.utils.clip_grad_value_') {
      await clipGradValue(ps, c.kwargs.clip_value);
    } else {
      const normType = c.kwargs.norm_type === 'inf' ? Infinity : c.kwargs.norm_type;
      const total = await clipGradNorm(ps, c.kwargs.max_norm, { normType });
      assert.ok(Math.abs(total - data.get(`${c.name}.total_norm`)!.data[0]!) < 1e-13, `${c.name}: total norm ${total}`);
    }
    ps.forEach((p, i) => assert.ok(maxRelErr(p.grad!.dataSync(), data.get(`${c.name}.out.${i}`)!.data) < 1e-14, `${c.name}: grad ${i}`));
  });
}

test('clipGradNorm: errorIfNonfinite names the problem; bad arguments', async () => {
  const p = tensor([1, 2], [2], 'float64').requireGrad();
  p.grad = tensor([NaN, 1], [2], 'float64');
  await assert.rejects(() => clipGradNorm([p], 1, { errorIfNonfinite: true }), /total norm of order 2 of the gradients is NaN/);
  await assert.rejects(() => clipGradNorm([p], 0), /maxNorm must be > 0/);
});

function scheduleFor(c: { name: string; params: Record<string, number> }): Schedule {
  const p = c.params;
  switch (c.name) {
    case 'step_lr': return stepSchedule({ stepSize: p.step_size!, gamma: p.gamma! });
    case 'warmup_cosine': return warmupCosine({ warmupSteps: p.warmup_steps!, totalSteps: p.total_steps!, minLrRatio: p.min_lr_ratio! });
    case 'warmup_linear': return warmupLinear({ warmupSteps: p.warmup_steps!, totalSteps: p.total_steps! });
    case 'wsd_cosine':
    case 'wsd_linear':
      return wsd({ warmupSteps: p.warmup_steps!, stableSteps: p.stable_steps!, decaySteps: p.decay_steps!, minLrRatio: p.min_lr_ratio!,
        decayType: c.name === 'wsd_cosine' ? 'cosine' : 'linear' });
    case 'constant': return constantSchedule();
  }
  throw new Error(`unknown schedule ${c.name}`);
}

for (const c of meta.schedule.cases) {
  test(`schedule equals PyTorch: ${c.name}`, () => {
    const p = tensor([0], [1], 'float64').requireGrad();
    const opt = new SGD([p], { lr: c.base_lr });
    const sched = new LRScheduler(opt, scheduleFor(c));
    const lrs: number[] = [];
    for (let s = 0; s < c.steps; s++) { lrs.push(opt.paramGroups[0]!.lr); sched.step(); }
    const expected = Array.from(data.get(`${c.name}.lr`)!.data);
    if (!c.name.includes('cosine')) assert.deepEqual(lrs, expected);
    // V8's Math.cos and glibc's cos may differ in the last bit: cosine schedules agree to 1 ulp, not bit for bit.
    else lrs.forEach((lr, i) => assert.ok(Math.abs(lr - expected[i]!) <= 2 ** -52 * Math.abs(expected[i]!), `step ${i}: ${lr} vs ${expected[i]}`));
  });
}

test('schedules compose: sequence restarts the step at each milestone; product multiplies; state resumes', () => {
  const s = sequence([linearWarmup(4), stepSchedule({ stepSize: 2, gamma: 0.5 })], [4]);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map(s), [0, 0.25, 0.5, 0.75, 1, 1, 0.5, 0.5]);
  const q = product(linearWarmup(2), stepSchedule({ stepSize: 3, gamma: 0.1 }));
  assert.deepEqual([0, 1, 2, 3].map(q), [0, 0.5, 1, 0.1]);
  const p = tensor([0], [1], 'float64').requireGrad();
  const a = new LRScheduler(new SGD([p], { lr: 1 }), q);
  a.step(); a.step();
  const b = new LRScheduler(new SGD([p], { lr: 1 }), q);
  b.loadStateDict(a.stateDict());
  b.step(); a.step();
  assert.equal(b.currentLrs()[0], a.currentLrs()[0]);
  assert.throws(() => sequence([linearWarmup(1)], [3]), /1 schedules need 0 milestones/);
  assert.throws(() => new SGD([], { lr: 1 }), /no parameters to optimise/);
  assert.throws(() => new SGD([p], { lr: 1, nesterov: true }), /Nesterov momentum requires momentum > 0/);
});
