"""Validate llama_ref against the transformers-generated fixture test/fixtures/hf-llama-tiny.

    /usr/bin/python3 tools/pyref/check_hf_fixture.py [--fixture DIR] [--precision hf|f64|both]

Asserts (for precision 'hf', which must pass): loss |diff| <= 1e-10, logits (attention_mask==1 positions)
max-abs <= 1e-5, token_loss max-abs <= 1e-6 (0 exactly where ignored), every grad rel L2 <= 1e-6, greedy_out
identical, ga_max_abs_diff_vs_full reproduced (<= 1e-12). precision 'f64' (no float32 casts anywhere) is reported
for information: it differs from the fixture only by the float32 rounding HF does inside (loss ~6e-7).
"""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402
import llama_ref  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def check(fixture, precision, verbose=True):
    cfg = llama_ref.load_config(os.path.join(fixture, "config.json"))
    params = st.load_tensors(os.path.join(fixture, "model.safetensors"))
    ref = st.load_tensors(os.path.join(fixture, "reference.safetensors"))
    model = llama_ref.LlamaRef(cfg, params, dtype=torch.float64, precision=precision)
    ids, am, labels = ref["input_ids"], ref["attention_mask"], ref["labels"]
    # labels must be input_ids with -100 at pads
    assert torch.equal(labels, torch.where(am.bool(), ids, torch.full_like(ids, -100)))
    out = llama_ref.run_reference(model, ids, am, labels, ref["greedy_prompt"], ref["greedy_out"].shape[1] - ref["greedy_prompt"].shape[1])

    res = {}
    res["loss_abs_diff"] = abs(float(out["loss"][0]) - float(ref["loss"][0]))
    valid = am.bool()
    res["logits_max_abs_diff(valid)"] = float((out["logits"] - ref["logits"].double())[valid].abs().max())
    res["logits_max_abs_diff(all)"] = float((out["logits"] - ref["logits"].double()).abs().max())
    tl_valid = labels[:, 1:] != -100
    res["token_loss_max_abs_diff"] = float((out["token_loss"] - ref["token_loss"]).abs().max())
    res["token_loss_zero_where_ignored"] = bool((ref["token_loss"][~tl_valid] == 0).all() and (out["token_loss"][~tl_valid] == 0).all())
    worst, worst_name = 0.0, None
    per = {}
    for n, g in out["grads"].items():
        r = ref["grad." + n].double()
        rel = float((g - r).norm() / r.norm())
        per[n] = rel
        if rel > worst:
            worst, worst_name = rel, n
    res["grad_rel_l2_max"] = worst
    res["grad_rel_l2_worst_param"] = worst_name
    # float32-rounded grads vs reference (the fixture stores F32)
    res["grad_rel_l2_max(after f32 cast)"] = max(
        float((g.float().double() - ref["grad." + n].double()).norm() / ref["grad." + n].double().norm()) for n, g in out["grads"].items())
    res["grad_keys_match"] = sorted("grad." + n for n in out["grads"]) == sorted(k for k in ref if k.startswith("grad."))
    res["ga_max_abs_diff_vs_full(ours)"] = out["ga_max_abs_diff_vs_full"]
    res["ga_max_abs_diff_vs_full_f64(ours)"] = out["ga_max_abs_diff_vs_full_f64"]
    res["ga_max_abs_diff_vs_full(fixture)"] = float(ref["ga_max_abs_diff_vs_full"][0])
    res["greedy_out_equal"] = bool(torch.equal(out["greedy_out"].int(), ref["greedy_out"]))
    if verbose:
        print(f"== precision={precision}  fixture={os.path.relpath(fixture, ROOT)}")
        for k, v in res.items():
            print(f"  {k:40s} {v}")
        if verbose > 1:
            for n, v in per.items():
                print(f"    grad rel L2 {n:55s} {v:.3e}")
    ok = (res["loss_abs_diff"] <= 1e-10 and res["logits_max_abs_diff(valid)"] <= 1e-5
          and res["token_loss_max_abs_diff"] <= 1e-6 and res["token_loss_zero_where_ignored"]
          and res["grad_rel_l2_max"] <= 1e-6 and res["grad_keys_match"] and res["greedy_out_equal"]
          and abs(res["ga_max_abs_diff_vs_full(ours)"] - res["ga_max_abs_diff_vs_full(fixture)"]) <= 1e-12)
    return ok, res


CONTROLS = ["mask_from_input_ids", "gqa_tile_heads", "rope_interleaved", "rope_scaling_ignored", "no_biases",
            "norm_weight_ignored", "eps_1e-5_vs_1e-6", "untied_head_copy", "sliding_window_ignored",
            "rope_attention_factor_ignored"]


def run_control(fixture, precision, name):
    """Re-run the check with one deliberate bug; returns the check result (it should FAIL)."""
    import json
    saved = (llama_ref.repeat_kv, llama_ref.rotate_half, llama_ref.rope_cos_sin, llama_ref.rope_inv_freq,
             llama_ref.LlamaRef.forward, llama_ref.LlamaRef.rmsnorm, st.load_tensors, llama_ref.Cfg.__init__)
    cfg_json = json.load(open(os.path.join(fixture, "config.json")))
    try:
        if name == "mask_from_input_ids":  # attention_mask derived as input_ids != pad(0)
            ref = st.load_tensors(os.path.join(fixture, "reference.safetensors"))
            if torch.equal(ref["attention_mask"].bool(), ref["input_ids"] != 0):
                return "no real token 0 inside a valid region: blind by construction"
            fwd = saved[4]
            llama_ref.LlamaRef.forward = lambda self, ids, am=None: fwd(self, ids, None if am is None else (ids != 0).int())
        elif name == "gqa_tile_heads":  # query head h -> kv head h % n_kv instead of h // n_rep
            nkv = cfg_json.get("num_key_value_heads") or cfg_json["num_attention_heads"]
            if nkv == 1 or nkv == cfg_json["num_attention_heads"]:
                return "MHA/MQA: head mapping cannot matter"
            llama_ref.repeat_kv = lambda x, n: x if n == 1 else x.repeat(1, n, 1, 1)
        elif name == "rope_interleaved":  # GPT-J pairs (2i, 2i+1) instead of HF halves (needs matching cos/sin)
            def rot(x):
                x1, x2 = x[..., 0::2], x[..., 1::2]
                return torch.stack((-x2, x1), dim=-1).flatten(-2)
            def cs(cfg, T, dtype, precision="hf"):
                c, s_ = saved[2](cfg, T, dtype, precision)
                h = c.shape[-1] // 2
                return c[..., :h].repeat_interleave(2, -1), s_[..., :h].repeat_interleave(2, -1)
            llama_ref.rotate_half = rot
            llama_ref.rope_cos_sin = cs
        elif name == "rope_scaling_ignored":
            rd = cfg_json.get("rope_parameters") or cfg_json.get("rope_scaling") or {}
            rtype = rd.get("rope_type", rd.get("type", "default"))
            if rtype == "default":
                return "rope_type default"
            inv = saved[3]
            def plain(cfg):
                rp = dict(cfg.rope); cfg.rope = {"rope_type": "default", "rope_theta": rp["rope_theta"]}
                try:
                    return inv(cfg)
                finally:
                    cfg.rope = rp
            llama_ref.rope_inv_freq = plain
        elif name == "no_biases":
            if not (cfg_json.get("attention_bias") or cfg_json.get("mlp_bias") or cfg_json.get("model_type") == "qwen2"):
                return "no biases"
            lt = saved[6]
            st.load_tensors = lambda p: {k: (torch.zeros_like(v) if k.endswith(".bias") else v) for k, v in lt(p).items()}
        elif name == "norm_weight_ignored":
            rms = saved[5]
            llama_ref.LlamaRef.rmsnorm = lambda self, x, w: rms(self, x, 1.0 + 0.0 * w)
        elif name == "eps_1e-5_vs_1e-6":
            init = saved[7]
            def i2(self, d):
                init(self, d); self.rms_norm_eps = 1e-5 if self.rms_norm_eps != 1e-5 else 1e-6
            llama_ref.Cfg.__init__ = i2
        elif name == "untied_head_copy":  # tied model run with a separate (equal-valued) lm_head: grads split
            if not cfg_json.get("tie_word_embeddings"):
                return "untied"
            lh = saved[4]
            def fwd(self, ids, am=None):
                w = self.params["model.embed_tokens.weight"]
                self.lm_head_weight = lambda: w.detach().clone().requires_grad_(False)
                return lh(self, ids, am)
            llama_ref.LlamaRef.forward = fwd
        elif name == "sliding_window_ignored":  # plain causal attention where the window should cut
            if cfg_json.get("model_type") != "mistral" or not cfg_json.get("sliding_window"):
                return "no sliding window"
            init = saved[7]
            def i3(self, d):
                init(self, d); self.sliding_window = None
            llama_ref.Cfg.__init__ = i3
        elif name == "rope_attention_factor_ignored":  # yarn's cos/sin scaling dropped
            inv = saved[3]
            probe = llama_ref.load_config(os.path.join(fixture, "config.json"))
            if inv(probe)[1] == 1.0:
                return "attention factor 1"
            llama_ref.rope_inv_freq = lambda cfg: (inv(cfg)[0], 1.0)
        return check(fixture, precision, verbose=0)
    finally:
        (llama_ref.repeat_kv, llama_ref.rotate_half, llama_ref.rope_cos_sin, llama_ref.rope_inv_freq,
         llama_ref.LlamaRef.forward, llama_ref.LlamaRef.rmsnorm, st.load_tensors, llama_ref.Cfg.__init__) = saved


def fixture_precision(fixture):
    """hf for transformers-made fixtures, else what reference.json says (make_fixture.py default f64)."""
    import json
    info = json.load(open(os.path.join(fixture, "reference.json")))
    if str(info.get("transformers", "")).split(".")[0].isdigit():
        return "hf"
    return "hf" if "reproduced" in info.get("precision", "") else "f64"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", default=os.path.join(ROOT, "test", "fixtures", "hf-llama-tiny"))
    ap.add_argument("--precision", default="both", choices=["hf", "f64", "both"])
    ap.add_argument("--controls", action="store_true", help="also run deliberately broken variants (must fail)")
    ap.add_argument("-v", action="count", default=1)
    a = ap.parse_args()
    required = fixture_precision(a.fixture)
    precs = ["hf", "f64"] if a.precision == "both" else [a.precision]
    failed = False
    for p in precs:
        ok, _ = check(a.fixture, p, a.v)
        print(f"  -> {'PASS' if ok else 'FAIL'}" + ("" if p == required else " (informational)"))
        failed |= (p == required and not ok)
    if a.controls:
        print(f"== negative controls (precision={required}); each must FAIL")
        for c in CONTROLS:
            r = run_control(a.fixture, required, c)
            if isinstance(r, str):
                print(f"  {c:28s} n/a ({r})")
                continue
            ok, res = r
            print(f"  {c:28s} {'FAIL (good)' if not ok else 'PASS (BAD: check is blind to it)'}  "
                  f"loss diff {res['loss_abs_diff']:.2e}  logits {res['logits_max_abs_diff(valid)']:.2e}  "
                  f"grad rel {res['grad_rel_l2_max']:.2e}  greedy {'same' if res['greedy_out_equal'] else 'differs'}")
            failed |= ok
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
