"""LoRA reference (PEFT's formulas) on the llama-tied-gqa4 fixture, in float64:

    y = x Wᵀ (+ b) + scaling · (x Aᵀ) Bᵀ,   A [r, in], B [out, r],   scaling = alpha / r  (rsLoRA: alpha / sqrt(r))

Writes test/fixtures/lora-tied-gqa4/: adapter_config.json and adapter_model.safetensors in PEFT's format
(keys base_model.model.<module>.lora_A.weight / lora_B.weight, float32), and reference.safetensors with the loss,
the logits and every adapter gradient of the base fixture's batch (float64, computed from the float32 values).
B is random (not PEFT's zero init) so that the adapters change the output and the gradients of A are non-zero.

    /usr/bin/python3 tools/pyref/make_lora_fixture.py
"""
import json
import math
import os
import sys
from collections import OrderedDict

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402
import llama_ref  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BASE = os.path.join(ROOT, "test", "fixtures", "llama-tied-gqa4")
OUT = os.path.join(ROOT, "test", "fixtures", "lora-tied-gqa4")
R, ALPHA, TARGETS, SEED = 4, 8, ["q_proj", "v_proj", "down_proj"], 7


class LoraRef(llama_ref.LlamaRef):
    def __init__(self, cfg, params, adapters, scaling):
        super().__init__(cfg, params, dtype=torch.float64, precision="f64")
        for p in self.params.values():
            p.requires_grad_(False)  # frozen base
        self.adapters = OrderedDict((k, v.detach().to(torch.float64).clone().requires_grad_(True)) for k, v in adapters.items())
        self.scaling = scaling

    def linear(self, x, name):
        y = super().linear(x, name)
        a = self.adapters.get(f"base_model.model.{name}.lora_A.weight")
        if a is None:
            return y
        b = self.adapters[f"base_model.model.{name}.lora_B.weight"]
        return y + self.scaling * torch.nn.functional.linear(torch.nn.functional.linear(x, a), b)


def main():
    cfg = llama_ref.load_config(os.path.join(BASE, "config.json"))
    params = st.load_tensors(os.path.join(BASE, "model.safetensors"))
    ref = st.load_tensors(os.path.join(BASE, "reference.safetensors"))
    g = torch.Generator().manual_seed(SEED)
    shapes = llama_ref.param_shapes(cfg)
    adapters = OrderedDict()
    for n in llama_ref.param_names(cfg):
        mod = n[: -len(".weight")] if n.endswith(".weight") else None
        if mod is None or mod.split(".")[-1] not in TARGETS:
            continue
        out_f, in_f = shapes[n]
        bound = 1 / math.sqrt(in_f)  # PEFT: kaiming_uniform_(a=sqrt(5)) on A [r, in] gives U(-1/sqrt(in), 1/sqrt(in))
        adapters[f"base_model.model.{mod}.lora_A.weight"] = ((torch.rand(R, in_f, generator=g, dtype=torch.float64) * 2 - 1) * bound).float()
        adapters[f"base_model.model.{mod}.lora_B.weight"] = (torch.randn(out_f, R, generator=g, dtype=torch.float64) * 0.05).float()
    scaling = ALPHA / R
    model = LoraRef(cfg, params, adapters, scaling)
    ids, mask, labels = ref["input_ids"], ref["attention_mask"], ref["labels"]
    logits = model.forward(ids, mask)
    loss = model.causal_lm_loss(logits, labels)
    loss.backward()
    out = OrderedDict()
    out["loss"] = loss.detach().reshape(1)
    out["logits"] = logits.detach()
    for k, v in model.adapters.items():
        out[f"grad.{k}"] = v.grad.detach()
    # merged weights: W + scaling · B A (what merge_and_unload exports)
    for k in adapters:
        if k.endswith("lora_A.weight"):
            mod = k[len("base_model.model."): -len(".lora_A.weight")]
            a, b = adapters[k].double(), adapters[k.replace("lora_A", "lora_B")].double()
            out[f"merged.{mod}.weight"] = params[mod + ".weight"].double() + scaling * (b @ a)
    os.makedirs(OUT, exist_ok=True)
    st.save(adapters, os.path.join(OUT, "adapter_model.safetensors"), metadata={"format": "pt"})
    st.save(out, os.path.join(OUT, "reference.safetensors"))
    config = OrderedDict([
        ("alpha_pattern", {}), ("auto_mapping", None), ("base_model_name_or_path", "llama-tied-gqa4"), ("bias", "none"),
        ("fan_in_fan_out", False), ("inference_mode", True), ("init_lora_weights", True), ("layers_pattern", None),
        ("layers_to_transform", None), ("lora_alpha", ALPHA), ("lora_dropout", 0.0), ("modules_to_save", None),
        ("peft_type", "LORA"), ("r", R), ("rank_pattern", {}), ("revision", None), ("target_modules", sorted(TARGETS)),
        ("task_type", "CAUSAL_LM"), ("use_dora", False), ("use_rslora", False),
    ])
    with open(os.path.join(OUT, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    print(f"loss {float(loss):.12f}; {len(adapters)} adapter tensors; written to {OUT}")


if __name__ == "__main__":
    main()
