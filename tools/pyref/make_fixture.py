"""Build a random LLaMA, write an HF-style fixture folder (config.json, model.safetensors, reference.safetensors,
reference.json) with the same keys / dtypes / semantics as test/fixtures/hf-llama-tiny.

    /usr/bin/python3 tools/pyref/make_fixture.py --name llama-tied-gqa4
    /usr/bin/python3 tools/pyref/make_fixture.py --name llama-mha-bias-llama3
    /usr/bin/python3 tools/pyref/make_fixture.py --name qwen2-tied-bias
    /usr/bin/python3 tools/pyref/make_fixture.py --name qwen3-qknorm-yarn
    /usr/bin/python3 tools/pyref/make_fixture.py --name mistral-window

Presets (see PRESETS below) fix config, batch shape, padding and seed; --seed / --precision / --out override.
Forward/backward run in float64 from the float32 weights (llama_ref.LlamaRef).
"""
import argparse
import json
import os
import sys
from collections import OrderedDict

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402
import llama_ref  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

# transformers-4 style (top-level rope_theta / rope_scaling, torch_dtype), tied embeddings, GQA 4, head_dim != hidden/heads
TIED_GQA4 = OrderedDict([
    ("architectures", ["LlamaForCausalLM"]),
    ("attention_bias", False),
    ("attention_dropout", 0.0),
    ("bos_token_id", 1),
    ("eos_token_id", 2),
    ("head_dim", 16),
    ("hidden_act", "silu"),
    ("hidden_size", 96),
    ("initializer_range", 0.02),
    ("intermediate_size", 160),
    ("max_position_embeddings", 128),
    ("mlp_bias", False),
    ("model_type", "llama"),
    ("num_attention_heads", 8),
    ("num_hidden_layers", 3),
    ("num_key_value_heads", 2),
    ("pretraining_tp", 1),
    ("rms_norm_eps", 1e-06),
    ("rope_scaling", None),
    ("rope_theta", 500000.0),
    ("tie_word_embeddings", True),
    ("torch_dtype", "float32"),
    ("transformers_version", "4.51.3"),
    ("use_cache", True),
    ("vocab_size", 200),
])

# transformers-5 style (rope_parameters, dtype), llama3 rope scaling, MHA, attention + mlp biases, untied head
MHA_BIAS_LLAMA3 = OrderedDict([
    ("architectures", ["LlamaForCausalLM"]),
    ("attention_bias", True),
    ("attention_dropout", 0.0),
    ("bos_token_id", 1),
    ("dtype", "float32"),
    ("eos_token_id", 2),
    ("head_dim", 16),
    ("hidden_act", "silu"),
    ("hidden_size", 64),
    ("initializer_range", 0.02),
    ("intermediate_size", 128),
    ("max_position_embeddings", 256),
    ("mlp_bias", True),
    ("model_type", "llama"),
    ("num_attention_heads", 4),
    ("num_hidden_layers", 2),
    ("num_key_value_heads", 4),
    ("pad_token_id", None),
    ("pretraining_tp", 1),
    ("rms_norm_eps", 1e-05),
    # original_max_position_embeddings 32 (with high_freq_factor 4, low_freq_factor 1 -> wavelength thresholds 8 and
    # 32) puts the head_dim-16 frequencies in all three llama3 regimes: i=0 (wavelen 2*pi) unchanged, i=1 (19.9)
    # smoothed, i>=2 (>= 62.8) divided by factor. With 16 no frequency would stay unchanged (2*pi > 16/4).
    ("rope_parameters", OrderedDict([
        ("factor", 8.0),
        ("high_freq_factor", 4.0),
        ("low_freq_factor", 1.0),
        ("original_max_position_embeddings", 32),
        ("rope_theta", 10000.0),
        ("rope_type", "llama3"),
    ])),
    ("tie_word_embeddings", False),
    ("transformers_version", "5.17.0"),
    ("use_cache", True),
    ("vocab_size", 160),
])

# Qwen2 (transformers-4 style, as Qwen2.5 ships): q/k/v biases but none on o_proj, tied head (Qwen2.5-0.5B), GQA 2,
# large theta; use_sliding_window false (its sliding_window / max_window_layers keys are then unused), no head_dim key.
QWEN2_TIED_BIAS = OrderedDict([
    ("architectures", ["Qwen2ForCausalLM"]),
    ("attention_dropout", 0.0),
    ("bos_token_id", 5),
    ("eos_token_id", 7),
    ("hidden_act", "silu"),
    ("hidden_size", 64),
    ("initializer_range", 0.02),
    ("intermediate_size", 144),
    ("max_position_embeddings", 512),
    ("max_window_layers", 2),
    ("model_type", "qwen2"),
    ("num_attention_heads", 4),
    ("num_hidden_layers", 2),
    ("num_key_value_heads", 2),
    ("rms_norm_eps", 1e-06),
    ("rope_scaling", None),
    ("rope_theta", 1000000.0),
    ("sliding_window", 8),
    ("tie_word_embeddings", True),
    ("torch_dtype", "bfloat16"),
    ("transformers_version", "4.43.1"),
    ("use_cache", True),
    ("use_sliding_window", False),
    ("vocab_size", 180),
])

# Qwen3 (transformers-4 style, as Qwen3 ships): q_norm / k_norm, explicit head_dim 24 != hidden/heads (16), GQA 2,
# untied, and YaRN scaling given with the old "type" key. original_max_position_embeddings 256 with theta 1e4 and
# head_dim 24 puts the ramp's ends at dimensions 0 and 5 (fractional blends for 1..4); max_position_embeddings =
# factor * original, so transformers 4.5x (which derived factor from their ratio) and 5 agree.
QWEN3_QKNORM_YARN = OrderedDict([
    ("architectures", ["Qwen3ForCausalLM"]),
    ("attention_bias", False),
    ("attention_dropout", 0.0),
    ("bos_token_id", 5),
    ("eos_token_id", 7),
    ("head_dim", 24),
    ("hidden_act", "silu"),
    ("hidden_size", 64),
    ("initializer_range", 0.02),
    ("intermediate_size", 112),
    ("max_position_embeddings", 1024),
    ("max_window_layers", 2),
    ("model_type", "qwen3"),
    ("num_attention_heads", 4),
    ("num_hidden_layers", 2),
    ("num_key_value_heads", 2),
    ("rms_norm_eps", 1e-06),
    ("rope_scaling", OrderedDict([("factor", 4.0), ("original_max_position_embeddings", 256), ("type", "yarn")])),
    ("rope_theta", 10000.0),
    ("sliding_window", None),
    ("tie_word_embeddings", False),
    ("torch_dtype", "bfloat16"),
    ("transformers_version", "4.51.0"),
    ("use_cache", True),
    ("use_sliding_window", False),
    ("vocab_size", 170),
])

# Mistral (transformers-4 style): sliding_window 5 < T = 13, so the window cuts into every row (and the greedy
# continuation to 17 tokens; pads stay below the window, so no padded query row loses every key); explicit head_dim 16 != hidden/heads (12), GQA 2, untied.
MISTRAL_WINDOW = OrderedDict([
    ("architectures", ["MistralForCausalLM"]),
    ("attention_dropout", 0.0),
    ("bos_token_id", 1),
    ("eos_token_id", 2),
    ("head_dim", 16),
    ("hidden_act", "silu"),
    ("hidden_size", 48),
    ("initializer_range", 0.02),
    ("intermediate_size", 128),
    ("max_position_embeddings", 256),
    ("model_type", "mistral"),
    ("num_attention_heads", 4),
    ("num_hidden_layers", 2),
    ("num_key_value_heads", 2),
    ("rms_norm_eps", 1e-05),
    ("rope_theta", 1000000.0),
    ("sliding_window", 5),
    ("tie_word_embeddings", False),
    ("torch_dtype", "float32"),
    ("transformers_version", "4.51.3"),
    ("use_cache", True),
    ("vocab_size", 150),
])

PRESETS = {
    "llama-tied-gqa4": dict(config=TIED_GQA4, B=3, T=13, pads=[0, 4, 7], seed=20240601,
                            real_zeros=[(0, 3), (1, 2), (2, 3)]),
    "llama-mha-bias-llama3": dict(config=MHA_BIAS_LLAMA3, B=2, T=20, pads=[0, 6], seed=20240602,
                                  real_zeros=[(0, 9), (1, 4)]),
    "qwen2-tied-bias": dict(config=QWEN2_TIED_BIAS, B=3, T=14, pads=[0, 5, 2], seed=20261208,
                            real_zeros=[(0, 6), (1, 3), (2, 8)]),
    "qwen3-qknorm-yarn": dict(config=QWEN3_QKNORM_YARN, B=2, T=18, pads=[0, 7], seed=20261209,
                              real_zeros=[(0, 11), (1, 2)]),
    "mistral-window": dict(config=MISTRAL_WINDOW, B=3, T=13, pads=[0, 3, 4], seed=20261210,
                           real_zeros=[(0, 7), (1, 1), (2, 4)]),
}

PAD_ID = 0
NEW_TOKENS = 12
PROMPT_LEN = 5


def init_params(cfg, gen):
    """Weights ~ N(0, 0.1) (biases too), norm weights 1 + 0.2 N(0,1): far from HF's init (0.02, ones), so a missing
    norm weight, a wrong scale or a dropped bias shows."""
    out = OrderedDict()
    for n, shp in llama_ref.param_shapes(cfg).items():
        r = torch.randn(shp, generator=gen, dtype=torch.float64)
        if n.endswith("norm.weight"):  # the layer norms, the final norm, qwen3's q_norm / k_norm
            t = 1.0 + 0.2 * r
        else:
            t = 0.1 * r
        out[n] = t.float()
    return out


def make_batch(cfg, B, T, pads, real_zeros, gen):
    ids = torch.randint(1, cfg.vocab_size, (B, T), generator=gen, dtype=torch.int64)
    am = torch.ones(B, T, dtype=torch.int64)
    for b, p in enumerate(pads):
        if p:
            ids[b, T - p:] = PAD_ID
            am[b, T - p:] = 0
    for b, t in real_zeros:  # a real token 0 (same id as the pad) inside a valid region
        assert am[b, t] == 1 and t < T - pads[b] - 1, (b, t)
        ids[b, t] = 0
    labels = torch.where(am.bool(), ids, torch.full_like(ids, llama_ref.IGNORE_INDEX))
    return ids.int(), am.int(), labels.int()


def greedy_margins(model, out_ids, prompt_len):
    """top1 - top2 logit at every greedy step (a tiny margin would make float32 re-implementations flip)."""
    ms = []
    with torch.no_grad():
        for s in range(prompt_len, out_ids.shape[1]):
            lg = model.forward(out_ids[:, :s])[:, -1, :]
            top = lg.topk(2, dim=-1).values[0]
            ms.append(float(top[0] - top[1]))
    return ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True, choices=sorted(PRESETS))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--precision", default="f64", choices=["f64", "hf"],
                    help="f64: every op in float64 (default, exact-math oracle); hf: reproduce HF's internal float32 "
                         "casts (RMSNorm, softmax, rope angles, loss) as check_hf_fixture.py validates")
    ap.add_argument("--out", default=None, help="output folder (default test/fixtures/NAME)")
    a = ap.parse_args()
    pre = PRESETS[a.name]
    seed = pre["seed"] if a.seed is None else a.seed
    out_dir = a.out or os.path.join(ROOT, "test", "fixtures", a.name)
    os.makedirs(out_dir, exist_ok=True)

    cfg_dict = pre["config"]
    cfg = llama_ref.Cfg(json.loads(json.dumps(cfg_dict)))
    gen = torch.Generator().manual_seed(seed)
    params = init_params(cfg, gen)
    B, T, pads = pre["B"], pre["T"], pre["pads"]
    ids, am, labels = make_batch(cfg, B, T, pads, pre["real_zeros"], gen)

    model = llama_ref.LlamaRef(cfg, params, dtype=torch.float64, precision=a.precision)
    # among 40 random prompts, one whose greedy continuation has a clear top-1 at every step (margin > 1e-2, so
    # float32 re-implementations cannot flip a token) and the most distinct new tokens (random models love loops)
    best = None
    for attempt in range(40):
        cand = torch.randint(1, cfg.vocab_size, (1, PROMPT_LEN), generator=gen, dtype=torch.int64)
        g = model.greedy(cand, NEW_TOKENS)
        ms = greedy_margins(model, g, PROMPT_LEN)
        if min(ms) <= 1e-2:
            continue
        key = (len(set(g[0, PROMPT_LEN:].tolist())), min(ms))
        if best is None or key > best[0]:
            best = (key, cand, ms)
    if best is None:
        raise RuntimeError("no prompt with a clear greedy margin")
    _, prompt, margins = best

    res = llama_ref.run_reference(model, ids, am, labels, prompt.int(), NEW_TOKENS, ga_split=1)

    # same model in the other precision mode: how far HF's float32 casts move things (for tolerances)
    other = "hf" if a.precision == "f64" else "f64"
    m2 = llama_ref.LlamaRef(cfg, params, dtype=torch.float64, precision=other)
    lg2 = m2.forward(ids, am)
    l2 = m2.causal_lm_loss(lg2, labels)
    l2.backward()
    g2 = m2.grads()
    other_diff = dict(
        loss_abs=abs(float(l2) - float(res["loss"][0])),
        logits_max_abs_valid=float((lg2.detach() - res["logits"])[am.bool()].abs().max()),
        grad_rel_l2_max=max(float((g2[n] - res["grads"][n]).norm() / res["grads"][n].norm()) for n in g2),
    )
    n_items = res["n_items"]
    mean_tl = float(res["token_loss"].sum() / n_items)

    ref = OrderedDict()
    ref["input_ids"] = ids
    ref["attention_mask"] = am
    ref["labels"] = labels
    ref["logits"] = res["logits"].float()
    ref["loss"] = res["loss"].double().reshape(1)
    ref["token_loss"] = res["token_loss"].double()
    for n, g in res["grads"].items():
        ref["grad." + n] = g.float()
    ref["ga_max_abs_diff_vs_full"] = torch.tensor([res["ga_max_abs_diff_vs_full"]], dtype=torch.float64)
    ref["greedy_prompt"] = prompt.int()
    ref["greedy_out"] = res["greedy_out"].int()

    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg_dict, f, indent=2)
        f.write("\n")
    st.save(OrderedDict(sorted(params.items())), os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    st.save(ref, os.path.join(out_dir, "reference.safetensors"))

    inv_freq, _ = llama_ref.rope_inv_freq(cfg)
    info = OrderedDict([
        ("generator", "tools/pyref/make_fixture.py --name " + a.name + ("" if a.seed is None else f" --seed {seed}")
         + ("" if a.precision == "f64" else f" --precision {a.precision}")),
        ("reference_model", "tools/pyref/llama_ref.py (validated against hf-llama-tiny by tools/pyref/check_hf_fixture.py)"),
        ("transformers", "not used (config.json written in the style of transformers "
         + ("4.x: top-level rope_theta/rope_scaling" if "rope_parameters" not in cfg_dict else "5.x: rope_parameters") + ")"),
        ("torch", torch.__version__),
        ("precision", "float64 forward/backward of float32 weights; "
         + ("every op in float64 (no HF float32 casts in RMSNorm/softmax/loss; rope inv_freq computed in float32 as HF,"
            " angles and cos/sin in float64)" if a.precision == "f64" else
            "HF's float32 casts reproduced (RMSNorm, softmax, rope angles, logits.float() in the loss)")),
        ("B", B), ("T", T), ("pads", pads), ("pad_id", PAD_ID),
        ("real_zero_tokens_at", [list(x) for x in pre["real_zeros"]]),
        ("seed", seed),
        ("init", "torch.Generator seed; weights and biases 0.1*N(0,1), norm weights 1+0.2*N(0,1), in param_names order; "
                 "then input ids, then prompts"),
        ("n_items", n_items),
        ("loss", float(res["loss"][0])),
        ("loss_minus_mean_token_loss", float(res["loss"][0]) - mean_tl),
        ("ga", "rows [0:1] and [1:B], each loss = sum CE / n_items; ga_max_abs_diff_vs_full is the max abs diff of the "
               "float32-cast accumulated grads vs the float32-cast full-batch grads"),
        ("ga_max_abs_diff_vs_full_float64", res["ga_max_abs_diff_vs_full_f64"]),
        ("greedy", f"{NEW_TOKENS} new tokens, argmax, no attention mask, positions 0.."),
        ("greedy_min_top1_top2_margin", min(margins)),
        ("rope_type", cfg.rope["rope_type"]),
        ("rope_inv_freq_float32", [float(x) for x in inv_freq]),
        ("tied", cfg.tie_word_embeddings),
        (f"vs_precision_{other}", other_diff),
    ])
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    sizes = {fn: os.path.getsize(os.path.join(out_dir, fn)) for fn in sorted(os.listdir(out_dir))}
    print(json.dumps(dict(out=os.path.relpath(out_dir, ROOT), sizes=sizes, loss=info["loss"], n_items=n_items,
                          greedy=ref["greedy_out"].tolist(), greedy_margin=min(margins), ga=res["ga_max_abs_diff_vs_full"],
                          ga_f64=res["ga_max_abs_diff_vs_full_f64"], **{f"vs_{other}": other_diff}), indent=1))


if __name__ == "__main__":
    main()
