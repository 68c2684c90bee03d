"""Optimizer, gradient-clipping and LR-schedule reference cases (float64, PyTorch).

    /usr/bin/python3 tools/pyref/make_optim_cases.py [--out test/fixtures/optim-cases]

Writes cases.safetensors (all F64) and cases.json (each case's hyper-parameters exactly as passed to torch, the
resolved param_groups, and the update formulas). Tensors:

  optimizer case C (parameters p0 [3,4], p1 [5]; 6 steps, k = 0..5):
    C.init.p0, C.init.p1            initial values
    C.grad.<k>.p0, C.grad.<k>.p1    gradient set as .grad before optimizer.step() number k
    C.after.<k>.p0, C.after.<k>.p1  parameters after optimizer.step() number k
  clip case C (three gradients g0 [4,3], g1 [7], g2 [2,2]):
    C.in.<i>       gradient i before clipping
    C.out.<i>      gradient i after clipping
    C.total_norm   [1] value returned by clip_grad_norm_ (absent for clip_value)
    C.clip_coef    [1] the factor applied: min(1, max_norm / (total_norm + 1e-6)) (absent for clip_value)
  schedule case C:
    C.lr  [40]  optimizer.param_groups[0]['lr'] in effect at optimizer step k (read before scheduler.step())

Every value is also re-derived from the formula written in cases.json by an independent float64 implementation and
must agree to 1e-13 (relative) or the script fails.
"""
import argparse
import json
import math
import os
import sys
from collections import OrderedDict

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SEED = 20240607
N_STEPS = 6
# per-step gradient scales: shrinking then growing magnitudes, so that AMSGrad's running max differs from v
GRAD_SCALES = [1.0, 0.3, 2.0, 0.1, 0.05, 1.5]
SCHED_STEPS = 40
BASE_LR = 1e-3
TOL = 1e-13

OPTIM_FORMULAS = {
    "SGD": (
        "torch.optim.SGD (torch 1.13 _single_tensor_sgd), per parameter, step k = 0,1,...: "
        "g = grad + weight_decay * p;  if momentum != 0: { buf = g (clone) at the FIRST step (no dampening applied), "
        "else buf = momentum * buf + (1 - dampening) * g;  g = g + momentum * buf if nesterov else g = buf };  "
        "p = p - lr * g"
    ),
    "Adam": (
        "torch.optim.Adam (torch 1.13 _single_tensor_adam, coupled L2), t = k + 1: "
        "g = grad + weight_decay * p;  m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g;  "
        "bc1 = 1 - beta1^t;  bc2 = 1 - beta2^t;  if amsgrad: vmax = max(vmax, v) (vmax starts at 0), "
        "denom = sqrt(vmax) / sqrt(bc2) + eps;  else denom = sqrt(v) / sqrt(bc2) + eps;  "
        "p = p - (lr / bc1) * m / denom   (m, v, vmax start at 0)"
    ),
    "AdamW": (
        "torch.optim.AdamW (torch 1.13 _single_tensor_adamw, decoupled decay), t = k + 1: "
        "p = p * (1 - lr * weight_decay)  (FIRST, before the moments);  m = beta1 * m + (1 - beta1) * grad;  "
        "v = beta2 * v + (1 - beta2) * grad * grad;  bc1 = 1 - beta1^t;  bc2 = 1 - beta2^t;  "
        "if amsgrad: vmax = max(vmax, v), denom = sqrt(vmax) / sqrt(bc2) + eps;  else denom = sqrt(v) / sqrt(bc2) + eps;"
        "  p = p - (lr / bc1) * m / denom.  lr and weight_decay are read from the param group at each step "
        "(a changed group lr takes effect at the next step; the moments are not reset)"
    ),
}

CLIP_FORMULAS = {
    "clip_grad_norm_": (
        "norm_type p finite: total = ( sum_i ||g_i||_p^p )^(1/p) computed as norm(stack([norm(g_i, p)]), p); "
        "norm_type inf: total = max_i max |g_i|;  clip_coef = max_norm / (total + 1e-6);  "
        "coef = min(clip_coef, 1.0);  every g_i *= coef (also when coef == 1);  returns total (the PRE-clip norm)"
    ),
    "clip_grad_value_": "every element g = min(max(g, -clip_value), clip_value); returns None",
}


# ----------------------------------------------------------------------------- schedules (float64 python)
def f_warmup_cosine(step, warmup=5, total=30, min_ratio=0.1):
    if step < warmup:
        return float(step) / float(max(1, warmup))
    progress = min(1.0, float(step - warmup) / float(max(1, total - warmup)))
    factor = 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress))
    return factor * (1.0 - min_ratio) + min_ratio


def f_warmup_linear(step, warmup=5, total=30):
    if step < warmup:
        return float(step) / float(max(1, warmup))
    return max(0.0, float(total - step) / float(max(1, total - warmup)))


def f_wsd(step, decay_type, warmup=5, stable=15, decay=10, min_ratio=0.1, num_cycles=0.5):
    # HF transformers _get_wsd_scheduler_lambda with warmup_type='linear' (HF's default)
    if step < warmup:
        progress = float(step) / float(max(1, warmup))
        factor = progress
        factor = factor * (1.0 - min_ratio) + min_ratio
        return max(0.0, factor)
    if step < warmup + stable:
        return 1.0
    if step < warmup + stable + decay:
        progress = float(step - warmup - stable) / float(max(1, decay))
        if decay_type == "linear":
            factor = 1.0 - progress
        elif decay_type == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
        else:
            raise ValueError(decay_type)
        factor = factor * (1.0 - min_ratio) + min_ratio
        return max(0.0, factor)
    return min_ratio


SCHEDULES = OrderedDict([
    ("step_lr", {
        "torch": "torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)",
        "params": {"step_size": 10, "gamma": 0.5},
        "formula": "lr(step) = base_lr * gamma^floor(step / step_size)  (torch applies it chainably: lr *= gamma "
                   "when step > 0 and step % step_size == 0)",
        "independent": lambda s: BASE_LR * 0.5 ** (s // 10),
    }),
    ("warmup_cosine", {
        "torch": "LambdaLR(optimizer, factor)",
        "params": {"warmup_steps": 5, "total_steps": 30, "min_lr_ratio": 0.1},
        "formula": "factor(step) = step / max(1, warmup) if step < warmup else "
                   "min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + cos(pi * progress)), "
                   "progress = min(1, (step - warmup) / max(1, total - warmup)); lr = base_lr * factor(step). "
                   "Evaluated in HF's order: (0.5 * (1 + cos(pi * 0.5 * 2 * progress))) * (1 - r) + r. "
                   "Steps >= total stay at min_lr_ratio (the min(1, .) clamp). NOTE: HF "
                   "get_cosine_with_min_lr_schedule_with_warmup does NOT clamp progress: past total_steps its lr "
                   "rises again (cos of pi*progress > pi); the clamp is this project's choice.",
        "lambda": f_warmup_cosine,
        "independent": lambda s: BASE_LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (s - 5) / 25))))
        if s >= 5 else BASE_LR * s / 5,
    }),
    ("warmup_linear", {
        "torch": "LambdaLR(optimizer, factor)",
        "params": {"warmup_steps": 5, "total_steps": 30},
        "formula": "HF get_linear_schedule_with_warmup: factor(step) = step / max(1, warmup) if step < warmup else "
                   "max(0, (total - step) / max(1, total - warmup)); lr = base_lr * factor(step) "
                   "(0 from step total on)",
        "lambda": f_warmup_linear,
        "independent": lambda s: BASE_LR * (s / 5 if s < 5 else max(0.0, (30 - s) / 25)),
    }),
    ("wsd_cosine", {
        "torch": "LambdaLR(optimizer, factor)",
        "params": {"warmup_steps": 5, "stable_steps": 15, "decay_steps": 10, "min_lr_ratio": 0.1,
                   "warmup_type": "linear", "decay_type": "cosine", "num_cycles": 0.5},
        "formula": "HF get_wsd_schedule (_get_wsd_scheduler_lambda), r = min_lr_ratio, W = warmup, S = stable, "
                   "D = decay:  step < W: factor = (step / max(1, W)) * (1 - r) + r  (linear warmup FROM r, not "
                   "from 0: step 0 has factor r);  W <= step < W + S: factor = 1;  W + S <= step < W + S + D: "
                   "progress = (step - W - S) / max(1, D), factor = 0.5 * (1 + cos(pi * num_cycles * 2 * progress))"
                   " * (1 - r) + r  (num_cycles 0.5: cos(pi * progress));  step >= W + S + D: factor = r.  "
                   "Every branch but the constant ones is max(0, .). lr = base_lr * factor(step).",
        "lambda": lambda s: f_wsd(s, "cosine"),
        "independent": lambda s: BASE_LR * (0.1 + 0.9 * s / 5 if s < 5 else 1.0 if s < 20 else
                                             0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 20) / 10)) if s < 30
                                             else 0.1),
    }),
    ("wsd_linear", {
        "torch": "LambdaLR(optimizer, factor)",
        "params": {"warmup_steps": 5, "stable_steps": 15, "decay_steps": 10, "min_lr_ratio": 0.1,
                   "warmup_type": "linear", "decay_type": "linear"},
        "formula": "HF get_wsd_schedule as wsd_cosine except the decay: W + S <= step < W + S + D: "
                   "progress = (step - W - S) / max(1, D), factor = (1 - progress) * (1 - r) + r.  "
                   "Warmup (from r), stable (1) and the tail (r) as wsd_cosine. lr = base_lr * factor(step).",
        "lambda": lambda s: f_wsd(s, "linear"),
        "independent": lambda s: BASE_LR * (0.1 + 0.9 * s / 5 if s < 5 else 1.0 if s < 20 else
                                             0.1 + 0.9 * (1 - (s - 20) / 10) if s < 30 else 0.1),
    }),
    ("constant", {
        "torch": "LambdaLR(optimizer, lambda step: 1.0)",
        "params": {},
        "formula": "factor(step) = 1; lr = base_lr",
        "lambda": lambda s: 1.0,
        "independent": lambda s: BASE_LR,
    }),
])


# ----------------------------------------------------------------------------- independent optimizers
def ref_step(kind, hp, p, g, state, t):
    """One step of the documented formula (plain tensor arithmetic). Returns the new p."""
    lr, wd = hp["lr"], hp.get("weight_decay", 0.0)
    if kind == "SGD":
        mom, damp, nest = hp.get("momentum", 0.0), hp.get("dampening", 0.0), hp.get("nesterov", False)
        d = g + wd * p
        if mom != 0:
            buf = d.clone() if "buf" not in state else mom * state["buf"] + (1 - damp) * d
            state["buf"] = buf
            d = d + mom * buf if nest else buf
        return p - lr * d
    b1, b2 = hp["betas"]
    eps, ams = hp["eps"], hp.get("amsgrad", False)
    if kind == "Adam":
        g = g + wd * p
    else:
        p = p * (1 - lr * wd)
    m = b1 * state.get("m", torch.zeros_like(p)) + (1 - b1) * g
    v = b2 * state.get("v", torch.zeros_like(p)) + (1 - b2) * g * g
    state["m"], state["v"] = m, v
    if ams:
        state["vmax"] = torch.maximum(state.get("vmax", torch.zeros_like(p)), v)
        vv = state["vmax"]
    else:
        vv = v
    denom = vv.sqrt() / math.sqrt(1 - b2 ** t) + eps
    return p - (lr / (1 - b1 ** t)) * m / denom


def rel_err(a, b):
    return float((a - b).abs().max() / max(1e-300, float(b.abs().max())))


def optimizer_cases(gen, tensors, log):
    init = {"p0": torch.randn(3, 4, generator=gen, dtype=torch.float64),
            "p1": torch.randn(5, generator=gen, dtype=torch.float64)}
    grads = [{n: GRAD_SCALES[k] * torch.randn(init[n].shape, generator=gen, dtype=torch.float64) for n in init}
             for k in range(N_STEPS)]
    adam_kw = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
    adamw_kw = {"lr": 1e-2, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1}
    # name -> (class name, param-group spec (None: one group with all params), kwargs, per-step lr overrides)
    specs = OrderedDict([
        ("sgd", ("SGD", None, {"lr": 0.1}, None)),
        ("sgd_momentum", ("SGD", None, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}, None)),
        ("sgd_nesterov", ("SGD", None, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, None)),
        ("adam", ("Adam", None, dict(adam_kw), None)),
        ("adam_amsgrad", ("Adam", None, dict(adam_kw, amsgrad=True), None)),
        ("adamw", ("AdamW", None, dict(adamw_kw), None)),
        ("adamw_amsgrad", ("AdamW", None, dict(adamw_kw, amsgrad=True), None)),
        ("adamw_groups", ("AdamW", [{"params": ["p0"], "lr": 1e-2, "weight_decay": 0.1},
                                    {"params": ["p1"], "lr": 5e-3, "weight_decay": 0.0}],
                          {"betas": (0.9, 0.95), "eps": 1e-8}, None)),
        ("adamw_lr_change", ("AdamW", None, dict(adamw_kw), {3: 2e-2})),
    ])
    meta = []
    results = {}
    for name, (cls, groups_spec, kw, lr_override) in specs.items():
        params = {n: init[n].clone().requires_grad_(True) for n in init}
        if groups_spec is None:
            groups_arg = [params["p0"], params["p1"]]
            group_names = [["p0", "p1"]]
        else:
            groups_arg = [dict({k: v for k, v in g.items() if k != "params"}, params=[params[n] for n in g["params"]])
                          for g in groups_spec]
            group_names = [g["params"] for g in groups_spec]
        opt = getattr(torch.optim, cls)(groups_arg, **kw)
        resolved = []
        for g, gn in zip(opt.param_groups, group_names):
            r = OrderedDict(params=gn)
            for k, v in g.items():
                if k != "params":
                    r[k] = list(v) if isinstance(v, tuple) else v
            resolved.append(r)
        # independent re-derivation state
        ref_p = {n: init[n].clone() for n in init}
        ref_state = {n: {} for n in init}
        lr_used = []
        for n in init:
            tensors[f"{name}.init.{n}"] = init[n].clone()
        after = []
        for k in range(N_STEPS):
            if lr_override and k in lr_override:
                for g in opt.param_groups:
                    g["lr"] = lr_override[k]
            lr_used.append([g["lr"] for g in opt.param_groups])
            for n in init:
                params[n].grad = grads[k][n].clone()
                tensors[f"{name}.grad.{k}.{n}"] = grads[k][n].clone()
            opt.step()
            after.append({n: params[n].detach().clone() for n in init})
            for n in init:
                tensors[f"{name}.after.{k}.{n}"] = params[n].detach().clone()
            # independent check
            for gi, gn in enumerate(group_names):
                hp = dict(opt.param_groups[gi])
                for n in gn:
                    ref_p[n] = ref_step(cls, hp, ref_p[n], grads[k][n], ref_state[n], k + 1)
                    e = rel_err(ref_p[n], params[n].detach())
                    assert e < TOL, (name, k, n, e)
        results[name] = after
        call = f"torch.optim.{cls}(" + (
            "[p0, p1]" if groups_spec is None else json.dumps(groups_spec).replace('"', "'")) + ", " + ", ".join(
            f"{k}={v!r}" for k, v in kw.items()) + ")"
        entry = OrderedDict(
            name=name, optimizer=f"torch.optim.{cls}", call=call,
            kwargs={k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()},
            param_groups_spec=groups_spec, resolved_param_groups=resolved,
            lr_per_step=lr_used, formula_key=cls)
        if lr_override:
            entry["lr_change"] = ("before optimizer.step() number k (0-based) for k in "
                                  f"{sorted(lr_override)}: for g in optimizer.param_groups: g['lr'] = "
                                  f"{[lr_override[k] for k in sorted(lr_override)]}; steps 0-2 use lr 1e-2, steps "
                                  "3-5 use 2e-2; Adam moments and step count continue")
        meta.append(entry)
        if log:
            print(f"optim {name:16s} ok (independent re-derivation < {TOL:g})")
    # sanity: the variants really differ from their base cases
    def differ(a, b):
        return max(float((results[a][-1][n] - results[b][-1][n]).abs().max()) for n in init)
    by_name = {m["name"]: m for m in meta}
    for a, b in [("adam_amsgrad", "adam"), ("adamw_amsgrad", "adamw"), ("adamw_lr_change", "adamw"),
                 ("adamw_groups", "adamw"), ("sgd_nesterov", "sgd_momentum"), ("sgd_momentum", "sgd"),
                 ("adamw", "adam")]:
        d = differ(a, b)
        assert d > 1e-6, (a, b, d)  # float64 noise is ~1e-16
        by_name[a].setdefault("max_abs_diff_after_last_step_vs", {})[b] = d
        if log:
            print(f"  {a} vs {b}: final max |diff| {d:.3e}")
    return meta


def clip_cases(gen, tensors, log):
    shapes = [(4, 3), (7,), (2, 2)]
    raw = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    tot = math.sqrt(sum(float((r * r).sum()) for r in raw))
    grads = [r * (3.0 / tot) for r in raw]
    specs = OrderedDict([
        ("clip_l2", ("clip_grad_norm_", {"max_norm": 1.0, "norm_type": 2.0})),
        ("clip_inf", ("clip_grad_norm_", {"max_norm": 0.5, "norm_type": float("inf")})),
        ("clip_noop", ("clip_grad_norm_", {"max_norm": 100.0, "norm_type": 2.0})),
        ("clip_value", ("clip_grad_value_", {"clip_value": 0.1})),
    ])
    meta = []
    for name, (fn, kw) in specs.items():
        ps = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
        for i, (p, g) in enumerate(zip(ps, grads)):
            p.grad = g.clone()
            tensors[f"{name}.in.{i}"] = g.clone()
        ret = getattr(torch.nn.utils, fn)(ps, **kw)
        entry = OrderedDict(name=name, function=f"torch.nn.utils.{fn}",
                            call=f"torch.nn.utils.{fn}([g0, g1, g2], " + ", ".join(
                                k + "=" + ("float('inf')" if v == float("inf") else repr(v)) for k, v in kw.items())
                            + ")",
                            kwargs={k: ("inf" if v == float("inf") else v) for k, v in kw.items()},
                            shapes=[list(s) for s in shapes])
        if fn == "clip_grad_norm_":
            total = float(ret)
            if kw["norm_type"] == float("inf"):
                ind = max(float(g.abs().max()) for g in grads)
            else:
                ind = math.sqrt(sum(float((g * g).sum()) for g in grads))
            assert abs(total - ind) <= TOL * ind, (name, total, ind)
            coef = min(1.0, kw["max_norm"] / (total + 1e-6))
            tensors[f"{name}.total_norm"] = torch.tensor([total], dtype=torch.float64)
            tensors[f"{name}.clip_coef"] = torch.tensor([coef], dtype=torch.float64)
            entry["total_norm"] = total
            entry["clip_coef"] = coef
            entry["clipped"] = coef < 1.0
            for p, g in zip(ps, grads):
                assert rel_err(g * coef, p.grad) < TOL, name
            if name == "clip_noop":
                assert coef == 1.0 and all(torch.equal(p.grad, g) for p, g in zip(ps, grads))
        else:
            assert ret is None
            for p, g in zip(ps, grads):
                assert torch.equal(g.clamp(-kw["clip_value"], kw["clip_value"]), p.grad)
            entry["n_clipped_elements"] = int(sum(int((g.abs() > kw["clip_value"]).sum()) for g in grads))
        for i, p in enumerate(ps):
            tensors[f"{name}.out.{i}"] = p.grad.detach().clone()
        meta.append(entry)
        if log:
            print(f"clip  {name:16s} ok {entry.get('total_norm', '')} {entry.get('clip_coef', '')}")
    return meta, tot


def schedule_cases(tensors, log):
    meta = []
    for name, spec in SCHEDULES.items():
        p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([p], lr=BASE_LR)
        if name == "step_lr":
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, spec["lambda"])
        lrs = []
        for s in range(SCHED_STEPS):
            lrs.append(opt.param_groups[0]["lr"])
            p.grad = torch.zeros_like(p)
            opt.step()
            sched.step()
        for s, lr in enumerate(lrs):
            ind = spec["independent"](s)
            assert abs(lr - ind) <= TOL * max(abs(ind), BASE_LR), (name, s, lr, ind)
        tensors[f"{name}.lr"] = torch.tensor(lrs, dtype=torch.float64)
        meta.append(OrderedDict(name=name, torch=spec["torch"], base_lr=BASE_LR, steps=SCHED_STEPS,
                                params=spec["params"], formula=spec["formula"], lr=lrs))
        if log:
            print(f"sched {name:16s} ok " + " ".join(f"{x:.3g}" for x in lrs[:8]) + " ... " +
                  " ".join(f"{x:.3g}" for x in lrs[18:32]))
    return meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "optim-cases"))
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    log = not args.quiet
    gen = torch.Generator().manual_seed(SEED)
    tensors = OrderedDict()
    optim_meta = optimizer_cases(gen, tensors, log)
    clip_meta, raw_norm = clip_cases(gen, tensors, log)
    sched_meta = schedule_cases(tensors, log)
    for k, v in tensors.items():
        assert v.dtype == torch.float64, k
    os.makedirs(args.out, exist_ok=True)
    st.save(tensors, os.path.join(args.out, "cases.safetensors"),
            metadata={"generator": "tools/pyref/make_optim_cases.py", "torch": torch.__version__})
    doc = OrderedDict(
        generator="tools/pyref/make_optim_cases.py",
        torch=torch.__version__,
        dtype="float64 throughout (every tensor F64; python floats for hyper-parameters and lrs)",
        seed=SEED,
        tolerance_note=f"every stored value was re-derived from the formulas below by an independent float64 "
                       f"implementation and agrees to {TOL:g} relative; torch >= 2 computes Adam's m with lerp_, "
                       f"which can differ in the last bits",
        optimizer=OrderedDict(
            tensors="<case>.init.p0 F64 [3,4], <case>.init.p1 F64 [5]; for k in 0..5: <case>.grad.<k>.p0/p1 "
                    "(set as .grad before optimizer.step() number k), <case>.after.<k>.p0/p1 (after that step)",
            steps=N_STEPS,
            init="p0, p1 ~ N(0,1)",
            grads=f"grad k = scale[k] * N(0,1), scale = {GRAD_SCALES} (shrinking magnitudes make AMSGrad's max "
                  f"differ from v); the same sequence in every case",
            formulas=OPTIM_FORMULAS,
            cases=optim_meta,
        ),
        clip=OrderedDict(
            tensors="<case>.in.<i> / <case>.out.<i> for i = 0,1,2 (shapes [4,3], [7], [2,2]), "
                    "<case>.total_norm F64 [1] and <case>.clip_coef F64 [1] (clip_grad_norm_ cases only)",
            inputs=f"N(0,1) scaled by 3 / (their joint 2-norm {raw_norm:.6f}), so the joint 2-norm is 3; "
                   f"the same inputs in every case",
            formulas=CLIP_FORMULAS,
            cases=clip_meta,
        ),
        schedule=OrderedDict(
            tensors="<case>.lr F64 [40]",
            protocol="optimizer = torch.optim.SGD([p], lr=base_lr); for step in 0..39: "
                     "lr[step] = optimizer.param_groups[0]['lr']; optimizer.step(); scheduler.step()  "
                     "(LambdaLR sets lr = base_lr * factor(step), evaluated in float64; factor(0) at construction)",
            cases=sched_meta,
        ),
    )
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}/cases.safetensors ({len(tensors)} tensors) and cases.json")


if __name__ == "__main__":
    main()
