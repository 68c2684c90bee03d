"""Cross-entropy reference cases (float64, torch.nn.functional.cross_entropy + autograd).

    /usr/bin/python3 tools/pyref/make_loss_cases.py [--out test/fixtures/loss-cases]

Writes cases.safetensors with, per case C:
  C.logits   F64 [N, V]
  C.targets  I32 [N]
  C.loss     F64 [1] (reduction sum/mean) or [N] (reduction none)
  C.grad     F64 [N, V]  d loss / d logits; for reduction 'none' the vector-Jacobian product with C.upstream
  C.upstream F64 [N]     (reduction 'none' only)
and cases.json describing each case's options and the formulas.
"""
import argparse
import json
import os
import sys
from collections import OrderedDict

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
N, V = 11, 7
SEED = 4242

FORMULAS = {
    "log_softmax": "logp[i,c] = logits[i,c] - lse[i],  lse[i] = log(sum_c exp(logits[i,c]))",
    "per_row": "l[i] = (1 - eps) * (-logp[i, t[i]]) + eps * (-(1/V) * sum_c logp[i,c])   for valid i (t[i] != ignore_index); "
               "l[i] = 0 for ignored i.  eps = label_smoothing (PyTorch semantics: the smoothing mass eps is spread "
               "uniformly over all V classes, the target included)",
    "reduction": "none: loss = l (shape [N]); sum: loss = sum_i l[i]; mean: loss = sum_i l[i] / n_valid, "
                 "n_valid = #{i : t[i] != ignore_index} (ignored rows count neither in numerator nor denominator)",
    "z_loss": "loss = (1/n_valid) * sum_{valid i} ( -logp[i, t[i]] + z * lse[i]^2 ),  z = z_loss coefficient "
              "(1e-2); ignored rows contribute 0 to the loss and have zero gradient",
    "grad": "d loss / d logits (float64 autograd); for reduction none: sum_i upstream[i] * d l[i] / d logits",
    "all_ignored_sum": "every target == ignore_index with reduction sum: loss = 0 and grad = 0 "
                       "(reduction mean would be 0/0 = NaN in PyTorch; not stored)",
}


def gen_targets(gen, n, v, ignore_index, n_ignore, must_contain=None):
    t = torch.randint(0, v, (n,), generator=gen)
    perm = torch.randperm(n, generator=gen)
    if ignore_index < 0:
        t[perm[:n_ignore]] = ignore_index
    else:
        t[t == ignore_index] = (ignore_index + 1) % v  # only the chosen rows hold the ignore index
        t[perm[:n_ignore]] = ignore_index
    if must_contain is not None:
        for c in must_contain:
            if not (t == c).any():
                t[perm[n_ignore]] = c
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "loss-cases"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)

    specs = []
    for red in ("none", "sum", "mean"):
        for ls in (0.0, 0.1):
            specs.append(dict(name=f"ce_{red}_ls{str(ls).replace('.', '')}", reduction=red, label_smoothing=ls,
                              ignore_index=-100, n_ignore=3))
    for red in ("none", "sum", "mean"):
        specs.append(dict(name=f"ce_ignore3_{red}", reduction=red, label_smoothing=0.0, ignore_index=3, n_ignore=2,
                          note="ignore_index=3 is a real class id; rows with target 3 are ignored, class 3 still "
                               "takes part in every softmax"))
    specs.append(dict(name="ce_ignore3_mean_ls01", reduction="mean", label_smoothing=0.1, ignore_index=3, n_ignore=2))
    specs.append(dict(name="zloss_mean", reduction="mean", label_smoothing=0.0, ignore_index=-100, n_ignore=3,
                      z_loss=1e-2))
    specs.append(dict(name="ce_shift100_mean", reduction="mean", label_smoothing=0.0, ignore_index=-100, n_ignore=2,
                      shift=100.0, note="logits + 100 (exp overflows float32 without max subtraction); "
                                        "loss/grad equal those of the unshifted logits"))
    specs.append(dict(name="ce_all_ignored_sum", reduction="sum", label_smoothing=0.0, ignore_index=-100, n_ignore=N))

    tensors = OrderedDict()
    desc = []
    for s in specs:
        logits = torch.randn(N, V, generator=gen, dtype=torch.float64) * 3.0
        if "shift" in s:
            logits = logits + s["shift"]
        t = gen_targets(gen, N, V, s["ignore_index"], s["n_ignore"],
                        must_contain=[3] if s["ignore_index"] == 3 else None)
        x = logits.clone().requires_grad_(True)
        if s.get("z_loss"):
            lse = torch.logsumexp(x, dim=-1)
            ce = F.cross_entropy(x, t, ignore_index=s["ignore_index"], reduction="none")
            valid = (t != s["ignore_index"]).double()
            loss = (ce + s["z_loss"] * lse.pow(2) * valid).sum() / valid.sum()
        else:
            loss = F.cross_entropy(x, t, ignore_index=s["ignore_index"], reduction=s["reduction"],
                                   label_smoothing=s["label_smoothing"])
        if s["reduction"] == "none":
            up = torch.randn(N, generator=gen, dtype=torch.float64)
            loss.backward(up)
            tensors[s["name"] + ".upstream"] = up
        else:
            loss.backward()
        # independent re-derivation of the value (formula in cases.json) as a guard
        with torch.no_grad():
            logp = torch.log_softmax(logits, -1)
            valid = t != s["ignore_index"]
            tt = torch.where(valid, t, torch.zeros_like(t))
            eps = s["label_smoothing"]
            l = (1 - eps) * (-logp.gather(1, tt[:, None])[:, 0]) + eps * (-logp.mean(-1))
            if s.get("z_loss"):
                l = l + s["z_loss"] * torch.logsumexp(logits, -1) ** 2
            l = torch.where(valid, l, torch.zeros_like(l))
            manual = {"none": l, "sum": l.sum(), "mean": l.sum() / valid.sum()}[s["reduction"]]
            assert torch.allclose(manual, loss.detach(), rtol=1e-13, atol=1e-13), (s["name"], manual, loss)
        tensors[s["name"] + ".logits"] = logits
        tensors[s["name"] + ".targets"] = t.int()
        tensors[s["name"] + ".loss"] = loss.detach().reshape(-1) if s["reduction"] == "none" else loss.detach().reshape(1)
        tensors[s["name"] + ".grad"] = x.grad.detach()
        d = OrderedDict(name=s["name"], N=N, V=V, ignore_index=s["ignore_index"], reduction=s["reduction"],
                        label_smoothing=s["label_smoothing"], z_loss=s.get("z_loss", 0.0), weight=None,
                        n_valid=int((t != s["ignore_index"]).sum()),
                        has_upstream=s["reduction"] == "none")
        if "note" in s:
            d["note"] = s["note"]
        if s["reduction"] != "none":
            d["loss"] = float(loss)
        desc.append(d)
        print(f"{s['name']:24s} red={s['reduction']:4s} ls={s['label_smoothing']} ign={s['ignore_index']:5d} "
              f"n_valid={d['n_valid']:2d} loss={loss.detach().reshape(-1)[:3].tolist()} |grad|={float(x.grad.norm()):.4f}")

    st.save(tensors, os.path.join(a.out, "cases.safetensors"))
    info = OrderedDict(
        generator="tools/pyref/make_loss_cases.py",
        torch=torch.__version__,
        dtype="float64 throughout; logits ~ 3 * N(0,1)",
        seed=SEED,
        tensors="<case>.logits F64 [N,V], <case>.targets I32 [N], <case>.loss F64 ([1] for sum/mean, [N] for none), "
                "<case>.grad F64 [N,V], <case>.upstream F64 [N] (reduction none only)",
        formulas=FORMULAS,
        cases=desc,
    )
    with open(os.path.join(a.out, "cases.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
