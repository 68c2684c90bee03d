"""PyTorch reference for the training-parity fixture (test/fixtures/train-parity/) -> expected.json.

Inputs (written by tools/make-train-parity.mjs): config.json (HF LLaMA config, tied embeddings), model.safetensors
(initial weights, HF names, F32), batches.safetensors (`step{s}.micro{m}.input_ids|attention_mask|labels`, I32
[2,128]; labels -100 on padding), hyper.json (optimizer / schedule / clipping / step counts).

Per optimizer step s (0-based):
  N = number of valid shifted targets (labels[:, 1:] != -100) over ALL micro-batches of the step
  for each micro-batch m: logits = model(input_ids, attention_mask)
                          loss_m = sum of token CE over valid shifted targets / N   (HF ForCausalLMLoss with
                                   num_items_in_batch = N); loss_m.backward()  (gradients accumulate)
  loss      = sum_m loss_m
  grad_norm = torch.nn.utils.clip_grad_norm_(params, clipGradNorm)   (the returned PRE-clip total 2-norm)
  lr        = optimizer.param_groups[0]['lr']  (the lr this step uses)
  optimizer.step(); scheduler.step(); optimizer.zero_grad()

Optimizer: torch.optim.AdamW(lr, betas, eps), two param groups: weight_decay on parameters with ndim >= 2, 0 on
1-D parameters (norm weights). Tied embeddings: embed_tokens.weight is the LM head (one parameter, decayed).
Schedule: LambdaLR, factor(step) = step / max(1, warmup) for step < warmup, else
  min_ratio + (1 - min_ratio) * 0.5 * (1 + cos(pi * progress)),  progress = min(1, (step - warmup) / max(1, total - warmup))
(HF get_cosine_with_min_lr_schedule_with_warmup with num_cycles 0.5 and min_lr_rate = min_ratio; the min(1, .) clamp
is ours and never active here since all steps < total; HF evaluates it as 0.5*(1+cos(pi*0.5*2*progress))*(1-r)+r,
which is what is computed below -- equal to the formula above up to rounding in the last bit).

Runs twice: float64 (weights cast from F32, llama_ref precision 'f64': every op in float64) -> the reference, and
float32 (llama_ref precision 'hf', i.e. HF's float32 model) -> the float32 noise that a float32 trainer should
expect. Run from the repository root:  /usr/bin/python3 tools/pyref/train_ref.py --controls
(--controls also reruns deliberately wrong float64 variants, recorded under "controls"; each must move loss or
grad_norm by > 1e-4 relative at some step, else exit 1.)
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402
import st  # noqa: E402


def cosine_min_lr_factor(step, warmup, total, min_ratio):
    if step < warmup:
        return float(step) / float(max(1, warmup))
    progress = min(1.0, float(step - warmup) / float(max(1, total - warmup)))
    factor = 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress))
    return factor * (1.0 - min_ratio) + min_ratio


CONTROLS = {
    "lr_schedule_off_by_one": "step s uses factor(s+1) (scheduler stepped before the optimizer)",
    "decay_all_params": "weight_decay also on 1-D (norm) parameters",
    "no_clipping": "clip_grad_norm_ skipped (norm still recorded)",
    "per_micro_mean": "each micro-batch loss is its own mean, averaged over micro-batches",
    "adam_coupled_l2": "torch.optim.Adam with weight_decay (L2 added to the gradient) instead of AdamW",
    "eps_inside_sqrt": "AdamW written by hand with eps inside the sqrt: p -= lr*m_hat/sqrt(v_hat+eps)",
}


class _EpsInSqrtAdamW:
    """Deliberately wrong AdamW (negative control only)."""

    def __init__(self, groups, lr, betas, eps):
        self.param_groups = [dict(g, lr=lr, initial_lr=lr) for g in groups]
        self.betas, self.eps, self.t, self.state = betas, eps, 0, {}

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        with torch.no_grad():
            for g in self.param_groups:
                for p in g["params"]:
                    m, v = self.state.setdefault(id(p), (torch.zeros_like(p), torch.zeros_like(p)))
                    p.mul_(1 - g["lr"] * g["weight_decay"])
                    m.mul_(b1).add_(p.grad, alpha=1 - b1)
                    v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                    mh, vh = m / (1 - b1 ** self.t), v / (1 - b2 ** self.t)
                    p.sub_(g["lr"] * mh / torch.sqrt(vh + self.eps))

    def zero_grad(self):
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None


def run(fixture, dtype, precision, log=True, control=None):
    cfg = llama_ref.load_config(os.path.join(fixture, "config.json"))
    with open(os.path.join(fixture, "hyper.json")) as f:
        hyper = json.load(f)
    weights = st.load_tensors(os.path.join(fixture, "model.safetensors"))
    batches = st.load_tensors(os.path.join(fixture, "batches.safetensors"))
    assert hyper["optimizer"] == "AdamW" and hyper["schedule"]["kind"] == "warmup-cosine", hyper
    assert hyper["noDecay"] == "1-D parameters", hyper["noDecay"]

    model = llama_ref.LlamaRef(cfg, weights, dtype=dtype, precision=precision)
    names = list(model.params.keys())
    params = [model.params[n] for n in names]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": hyper["weightDecay"]},
              {"params": no_decay, "weight_decay": hyper["weightDecay"] if control == "decay_all_params" else 0.0}]
    kw = dict(lr=hyper["lr"], betas=tuple(hyper["betas"]), eps=hyper["eps"])
    sch = hyper["schedule"]
    shift = 1 if control == "lr_schedule_off_by_one" else 0

    def factor(s):
        return cosine_min_lr_factor(s + shift, sch["warmupSteps"], sch["totalSteps"], sch["minLrRatio"])

    if control == "eps_inside_sqrt":
        opt = _EpsInSqrtAdamW(groups, **kw)
        sched = None
    else:
        opt = (torch.optim.Adam if control == "adam_coupled_l2" else torch.optim.AdamW)(groups, **kw)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)

    steps = []
    for s in range(hyper["steps"]):
        micro = []
        for m in range(hyper["microBatches"]):
            p = f"step{s}.micro{m}"
            micro.append((batches[p + ".input_ids"].long(), batches[p + ".attention_mask"].long(),
                          batches[p + ".labels"].long()))
        n_micro = [llama_ref.count_items(lab) for _, _, lab in micro]
        n_items = sum(n_micro)
        micro_losses = []
        if sched is None:
            for g in opt.param_groups:
                g["lr"] = hyper["lr"] * factor(s)
        for (ids, mask, lab), nm in zip(micro, n_micro):
            logits = model.forward(ids, mask)
            if control == "per_micro_mean":
                loss = model.causal_lm_loss(logits, lab, num_items_in_batch=nm) / len(micro)
            else:
                loss = model.causal_lm_loss(logits, lab, num_items_in_batch=n_items)
            loss.backward()
            micro_losses.append(loss.detach().double().item())
        step_loss = sum(micro_losses)
        total_norm = torch.nn.utils.clip_grad_norm_(
            params, float("inf") if control == "no_clipping" else hyper["clipGradNorm"])
        if control == "no_clipping":
            total_norm = torch.norm(torch.stack([torch.norm(p.grad) for p in params]))
        lr = opt.param_groups[0]["lr"]
        assert all(g["lr"] == lr for g in opt.param_groups)
        opt.step()
        if sched is not None:
            sched.step()
        opt.zero_grad()
        steps.append({"step": s, "loss": step_loss, "grad_norm": float(total_norm), "lr": lr, "n_items": n_items,
                      "micro_loss": micro_losses, "n_items_micro": n_micro})
        if log:
            print(f"[{str(dtype)[6:]}] step {s:2d} loss {step_loss:.10f} grad_norm {float(total_norm):.8f} "
                  f"lr {lr:.6e} N {n_items}")
    final = {n: float(model.params[n].detach().double().norm()) for n in names}
    return steps, final


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", default="test/fixtures/train-parity")
    ap.add_argument("--out", default=None, help="default: <fixture>/expected.json")
    ap.add_argument("--controls", action="store_true",
                    help="also run deliberately wrong float64 variants; each must differ from the reference by "
                         "more than 1e-4 relative (loss or grad_norm) at some step; exit 1 otherwise")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # keeps the float32 run's reduction order fixed

    s64, final64 = run(args.fixture, torch.float64, "f64")
    s32, final32 = run(args.fixture, torch.float32, "hf")
    for a, b in zip(s64, s32):
        assert a["lr"] == b["lr"] and a["n_items"] == b["n_items"]

    def rel(a, b):
        return abs(a - b) / abs(b)

    rel_loss = [rel(b["loss"], a["loss"]) for a, b in zip(s64, s32)]
    rel_gn = [rel(b["grad_norm"], a["grad_norm"]) for a, b in zip(s64, s32)]
    with open(os.path.join(args.fixture, "hyper.json")) as f:
        hyper = json.load(f)
    out = {
        "generator": "tools/pyref/train_ref.py",
        "torch": torch.__version__,
        "precision": "float64",
        "notes": [
            "steps[s]: loss = sum over micro-batches of (sum token CE over valid shifted targets) / n_items, where "
            "n_items counts labels[:,1:] != -100 over ALL micro-batches of step s; grad_norm = value returned by "
            "clip_grad_norm_(params, clipGradNorm) = pre-clip total 2-norm of the accumulated gradients; lr = "
            "param_groups[0]['lr'] used by optimizer.step() of step s (step 0 has lr 0: warmup factor 0/5).",
            "loss/grad_norm of step s are computed with the weights after s optimizer steps, so they test the "
            "optimizer, the schedule and the clipping of all earlier steps.",
            "torch.optim.AdamW (decoupled: p *= 1 - lr*wd before the Adam update; bias correction; eps added to "
            "sqrt(v_hat)); groups: weight_decay on ndim>=2 params (tied embedding included), 0 on 1-D params.",
            "float64 run: weights cast F32->F64, every op float64 (llama_ref precision 'f64'). float32_run: the same "
            "in float32 (llama_ref precision 'hf' = HF's float32 model). max_rel_diff_f32_vs_f64 = max over steps "
            "of |f32 - f64| / |f64|.",
        ],
        "hyper": hyper,
        "schedule_formula": "factor(step) = step/max(1,warmup) if step < warmup else "
                            "minLrRatio + (1-minLrRatio)*0.5*(1+cos(pi*min(1,(step-warmup)/max(1,total-warmup)))); "
                            "lr = hyper.lr * factor(step)",
        "steps": [{k: st_[k] for k in ("step", "loss", "grad_norm", "lr", "n_items", "micro_loss", "n_items_micro")}
                  for st_ in s64],
        "final_param_l2_norm": final64,
        "float32_run": {
            "loss": [x["loss"] for x in s32],
            "grad_norm": [x["grad_norm"] for x in s32],
            "final_param_l2_norm": final32,
        },
        "rel_diff_f32_vs_f64": {"loss": rel_loss, "grad_norm": rel_gn},
        "max_rel_diff_f32_vs_f64": {"loss": max(rel_loss), "grad_norm": max(rel_gn)},
    }
    if args.controls:
        ok = True
        out["controls"] = {}
        for name, what in CONTROLS.items():
            sc, _ = run(args.fixture, torch.float64, "f64", log=False, control=name)
            dl = max(rel(b["loss"], a["loss"]) for a, b in zip(s64, sc))
            dg = max(rel(b["grad_norm"], a["grad_norm"]) for a, b in zip(s64, sc))
            caught = max(dl, dg) > 1e-4
            ok &= caught
            first = next((a["step"] for a, b in zip(s64, sc)
                          if max(rel(b["loss"], a["loss"]), rel(b["grad_norm"], a["grad_norm"])) > 1e-4), None)
            out["controls"][name] = {"what": what, "max_rel_diff_loss": dl, "max_rel_diff_grad_norm": dg,
                                     "first_step_over_1e-4": first}
            print(f"control {name:32s} max rel diff loss {dl:.3e} grad_norm {dg:.3e} first step >1e-4: {first} "
                  f"{'caught' if caught else 'NOT CAUGHT'}")
    path = args.out or os.path.join(args.fixture, "expected.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {path}; max rel diff f32 vs f64: loss {max(rel_loss):.3e} grad_norm {max(rel_gn):.3e}")
    if args.controls and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
