"""PyTorch counterpart of bench/lora.ts: LoRA vs full fine-tuning step on a model of a real shape (random weights:
SmolLM2-135M by default, --shape llama-3.2-1b or qwen3-1.7b), one mode per process. The model is tools/pyref/llama_ref.py (HF semantics, eager attention) in float32;
LoRA is hand-written with PEFT's formulas (y = x Wᵀ + (α/r)·(x Aᵀ) Bᵀ on every Linear but the head), the base
frozen (requires_grad False). A step = forward + HF loss + backward + clip_grad_norm_(1.0) + AdamW + zero_grad.

    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OPENBLAS_CORETYPE=SkylakeX GLIBC_TUNABLES=glibc.malloc.hugetlb=1 \\
      /usr/bin/python3 bench/lora_torch.py --mode lora|full --threads 2 [--shape llama-3.2-1b --batch 1 --seq 256]

The base weights are float32 here (Debian's PyTorch 1.13 has no fast CPU bfloat16 matmul).
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "pyref"))
import llama_ref  # noqa: E402

CFG = {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
       "num_key_value_heads": 3, "tie_word_embeddings": True, "rms_norm_eps": 1e-5, "max_position_embeddings": 2048,
       "rope_theta": 10000.0, "hidden_act": "silu"}
SHAPES = {
    "smollm2-135m": CFG,
    "llama-3.2-1b": {"model_type": "llama", "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
                     "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                     "tie_word_embeddings": True, "rms_norm_eps": 1e-5, "max_position_embeddings": 131072,
                     "rope_theta": 500000.0, "hidden_act": "silu",
                     "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                      "original_max_position_embeddings": 8192}},
    "qwen3-1.7b": {"model_type": "qwen3", "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144,
                   "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
                   "tie_word_embeddings": True, "rms_norm_eps": 1e-6, "max_position_embeddings": 40960,
                   "rope_theta": 1000000.0, "hidden_act": "silu"},
}
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraModel(llama_ref.LlamaRef):
    def __init__(self, cfg, params, r, alpha, lora, targets=TARGETS):
        super().__init__(cfg, params, dtype=torch.float32, precision="f64")
        self.scaling = alpha / r
        self.adapters = {}
        if lora:
            for p in self.params.values():
                p.requires_grad_(False)
            shapes = llama_ref.param_shapes(cfg)
            for n in llama_ref.param_names(cfg):
                mod = n[: -len(".weight")]
                if n.endswith(".weight") and mod.split(".")[-1] in targets:
                    out_f, in_f = shapes[n]
                    a = ((torch.rand(r, in_f) * 2 - 1) / in_f ** 0.5).requires_grad_(True)
                    b = torch.zeros(out_f, r).requires_grad_(True)
                    self.adapters[mod] = (a, b)

    def linear(self, x, name):
        y = super().linear(x, name)
        ad = self.adapters.get(name)
        if ad is None:
            return y
        a, b = ad
        return y + self.scaling * torch.nn.functional.linear(torch.nn.functional.linear(x, a), b)

    def trainable(self):
        if self.adapters:
            return [t for ab in self.adapters.values() for t in ab]
        return list(self.params.values())


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["lora", "full"], default="lora")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-135m")
    ap.add_argument("--targets", default=",".join(TARGETS), help="comma-separated module names (default: every Linear but the head)")
    o = ap.parse_args()
    torch.set_num_threads(o.threads)
    torch.manual_seed(0)
    shape = SHAPES[o.shape]
    cfg = llama_ref.Cfg(shape)
    t_load = time.perf_counter()
    params = {n: torch.randn(s) * 0.02 for n, s in llama_ref.param_shapes(cfg).items()}
    for n in params:
        if n.endswith("norm.weight"):
            params[n] = torch.ones(params[n].shape)
    model = LoraModel(cfg, params, o.r, 2 * o.r, o.mode == "lora", tuple(o.targets.split(",")))
    del params
    train = model.trainable()
    opt = torch.optim.AdamW(train, lr=1e-4)
    ids = (torch.arange(o.batch * o.seq) * 7919 + 13).remainder(shape["vocab_size"]).reshape(o.batch, o.seq)
    t_load = time.perf_counter() - t_load

    def step():
        logits = model.forward(ids)
        loss = model.causal_lm_loss(logits, ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(train, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss)

    step()
    try:  # the peak of the timed steps, not of building the model (Linux)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    times, last = [], 0.0
    for _ in range(o.steps):
        t0 = time.perf_counter()
        last = step()
        times.append(time.perf_counter() - t0)
    ms = sorted(times)[len(times) // 2] * 1000
    trainable = sum(t.numel() for t in train)
    total = sum(t.numel() for t in model.params.values()) + (trainable if o.mode == "lora" else 0)
    print(json.dumps({"system": "pytorch " + torch.__version__, "shape": o.shape, "buildSeconds": round(t_load, 1), "mode": o.mode, "threads": o.threads, "batch": o.batch, "seq": o.seq,
                      "r": o.r if o.mode == "lora" else None, "trainableParams": trainable, "totalParams": total,
                      "targets": o.targets, "tokPerSec": round(o.batch * o.seq / (ms / 1000), 1), "stepMs": [round(t * 1000) for t in times],
                      "peakRssMB": peak_rss_mb(), "loss": last}))


if __name__ == "__main__":
    main()
