"""LLaMA-family reference in PyTorch with Hugging Face parameter names and HF *ForCausalLM semantics.

Families (config.json `model_type`), as transformers' modeling_{llama,mistral,qwen2,qwen3}.py define them:
  - llama:   biases on q/k/v/o when attention_bias, on gate/up/down when mlp_bias.
  - mistral: no biases; sliding-window attention when `sliding_window` is set (a key j is visible to query i when
             j <= i and j > i - sliding_window: masking_utils.sliding_window_overlay); explicit head_dim allowed.
  - qwen2:   biases on q/k/v, none on o (hard-coded there); sliding window only with use_sliding_window (refused).
  - qwen3:   per-head RMSNorm q_norm / k_norm (weight [head_dim]) on q and k after the projection and reshape,
             before RoPE; biases on q/k/v/o when attention_bias; head_dim defaults to 128.

Reads an HF config.json (transformers 4 style: top-level `rope_theta` + `rope_scaling`; transformers 5 style:
`rope_parameters` dict). RoPE types: default, linear, llama3, yarn (as transformers' modeling_rope_utils; yarn's
attention factor multiplies cos and sin).

Semantics mirrored from transformers' modeling_llama.py (eager attention):
  - RMSNorm: h = x.to(float32); h = h * rsqrt(mean(h^2, -1) + eps); return weight * h.to(x.dtype)
    (HF casts to float32 *even when the model runs in float64*; `precision='hf'` reproduces that,
    `precision='f64'` keeps everything in float64.)
  - RoPE: inv_freq computed in float32 (torch.arange(int64).float()), freqs = inv_freq (x) positions in float32,
    emb = cat(freqs, freqs), cos/sin = emb.cos()/sin() * attention_scaling (1.0 here), then cast to the model dtype.
    q*cos + rotate_half(q)*sin with rotate_half(x) = cat(-x[..., d/2:], x[..., :d/2]).
    position_ids = arange(T) for every row (also for right padding).
  - attention: scores = (q @ k^T) * head_dim^-0.5 + mask, mask additive with finfo(dtype).min at masked
    (causal and key-padding from attention_mask) entries; softmax in float32 (HF: dtype=torch.float32) then
    cast back; GQA by repeat_kv; o_proj.
  - MLP: down(silu(gate(x)) * up(x)); biases on q/k/v/o when attention_bias, on gate/up/down when mlp_bias.
  - final norm, lm_head (tied to embed_tokens when tie_word_embeddings).
  - loss: HF ForCausalLMLoss: logits.float(); labels padded right with -100 and shifted by one;
    cross_entropy(ignore_index=-100, reduction='sum') / num_items_in_batch if given, else reduction='mean'.
"""
import json
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


# ----------------------------------------------------------------------------- config
class Cfg:
    def __init__(self, d):
        self.raw = dict(d)
        self.model_type = d.get("model_type", "llama")
        assert self.model_type in ("llama", "mistral", "qwen2", "qwen3"), self.model_type
        self.vocab_size = d["vocab_size"]
        self.hidden_size = d["hidden_size"]
        self.intermediate_size = d["intermediate_size"]
        self.num_hidden_layers = d["num_hidden_layers"]
        self.num_attention_heads = d["num_attention_heads"]
        self.num_key_value_heads = d.get("num_key_value_heads") or self.num_attention_heads
        default_head_dim = 128 if self.model_type == "qwen3" else self.hidden_size // self.num_attention_heads
        self.head_dim = d.get("head_dim") or default_head_dim
        self.rms_norm_eps = d.get("rms_norm_eps", 1e-6)
        # where the attention biases are: (q/k/v, o)
        if self.model_type in ("llama", "qwen3"):
            b = bool(d.get("attention_bias", False))
            self.qkv_bias, self.o_bias = b, b
        elif self.model_type == "qwen2":
            self.qkv_bias, self.o_bias = True, False
        else:
            self.qkv_bias, self.o_bias = False, False
        self.mlp_bias = bool(d.get("mlp_bias", False)) if self.model_type == "llama" else False
        self.qk_norm = self.model_type == "qwen3"
        self.sliding_window = None
        if self.model_type == "mistral":
            self.sliding_window = d.get("sliding_window", 4096)
        elif d.get("use_sliding_window"):
            raise NotImplementedError("use_sliding_window")
        self.tie_word_embeddings = bool(d.get("tie_word_embeddings", False))
        self.max_position_embeddings = d.get("max_position_embeddings", 2048)
        self.hidden_act = d.get("hidden_act", "silu")
        assert self.hidden_act == "silu", self.hidden_act
        assert d.get("pretraining_tp", 1) == 1
        self.rope = self._rope_params(d)

    def _rope_params(self, d):
        # transformers 5: rope_parameters {rope_type, rope_theta, ...}; transformers 4: rope_theta + rope_scaling
        rp = d.get("rope_parameters")
        if rp:
            rp = dict(rp)
        else:
            rp = dict(d.get("rope_scaling") or {})
        rp.setdefault("rope_theta", d.get("rope_theta", 10000.0))
        rp["rope_type"] = rp.get("rope_type", rp.get("type", "default"))
        if rp["rope_type"] in ("llama3", "yarn", "longrope") and rp.get("original_max_position_embeddings") is None:
            # HF standardize_rope_params: defaults to max_position_embeddings when absent
            rp.setdefault("original_max_position_embeddings", self.max_position_embeddings)
        if "partial_rotary_factor" in d and d["partial_rotary_factor"] is not None:
            rp["partial_rotary_factor"] = d["partial_rotary_factor"]
        return rp


def load_config(path):
    with open(path) as f:
        return Cfg(json.load(f))


# ----------------------------------------------------------------------------- rope
def rope_inv_freq(cfg):
    """(inv_freq float32 [dim/2], attention_scaling) exactly as transformers computes them (float32)."""
    rp = cfg.rope
    base = rp["rope_theta"]
    dim = int(cfg.head_dim * rp.get("partial_rotary_factor", 1.0))
    assert dim == cfg.head_dim, "partial rotary not supported"
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    t = rp["rope_type"]
    if t == "default":
        pass
    elif t == "linear":
        inv_freq = inv_freq / rp["factor"]
    elif t == "llama3":
        factor = rp["factor"]
        low_freq_factor = rp["low_freq_factor"]
        high_freq_factor = rp["high_freq_factor"]
        old_context_len = rp["original_max_position_embeddings"]
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        smoothed = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
        is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
        inv_freq = torch.where(is_medium, smoothed, inv_freq_llama)
    elif t == "yarn":
        return yarn_inv_freq(rp, dim, cfg.max_position_embeddings)
    else:
        raise NotImplementedError(f"rope_type {t}")
    return inv_freq, 1.0


def yarn_inv_freq(rp, dim, max_position_embeddings):
    """transformers 5 `_compute_yarn_parameters`: float32 frequencies blended between interpolation (/ factor) and
    extrapolation by a linear ramp over the dimensions [low, high] found from beta_fast / beta_slow rotations in
    the original context; attention factor 0.1 ln(factor) + 1 unless given (or the mscale ratio)."""
    base = rp["rope_theta"]
    orig = rp["original_max_position_embeddings"]
    factor = rp.get("factor")
    if factor is None:
        factor = max_position_embeddings / orig

    def get_mscale(scale, mscale=1):
        return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0

    attention_factor = rp.get("attention_factor")
    if attention_factor is None:
        mscale, mscale_all_dim = rp.get("mscale"), rp.get("mscale_all_dim")
        if mscale and mscale_all_dim:
            attention_factor = float(get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim))
        else:
            attention_factor = get_mscale(factor)
    beta_fast = rp.get("beta_fast") or 32
    beta_slow = rp.get("beta_slow") or 1

    def correction_dim(rot):
        return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if rp.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    pos_freqs = base ** (torch.arange(0, dim, 2).float() / dim)
    extrapolation = 1.0 / pos_freqs
    interpolation = 1.0 / (factor * pos_freqs)
    extrapolation_factor = 1 - ramp
    inv_freq = interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor
    return inv_freq, attention_factor


def rope_cos_sin(cfg, T, dtype, precision="hf"):
    inv_freq, scaling = rope_inv_freq(cfg)
    pos = torch.arange(T, dtype=torch.int64)
    if precision == "hf":  # HF: float32 matmul of inv_freq [d/2,1] @ positions [1,T], autocast disabled
        freqs = (inv_freq[:, None].float() @ pos[None, :].float()).transpose(0, 1)
    else:
        freqs = torch.outer(pos.double(), inv_freq.double())
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = emb.cos() * scaling
    sin = emb.sin() * scaling
    return cos.to(dtype), sin.to(dtype)  # [T, hd]


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n_rep):
    if n_rep == 1:
        return x
    b, h, t, d = x.shape
    return x[:, :, None, :, :].expand(b, h, n_rep, t, d).reshape(b, h * n_rep, t, d)


# ----------------------------------------------------------------------------- params
def param_names(cfg):
    names = ["model.embed_tokens.weight"]
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        names.append(p + "input_layernorm.weight")
        for n in ("q", "k", "v", "o"):
            names.append(p + f"self_attn.{n}_proj.weight")
            if (cfg.o_bias if n == "o" else cfg.qkv_bias):
                names.append(p + f"self_attn.{n}_proj.bias")
        if cfg.qk_norm:
            names.append(p + "self_attn.q_norm.weight")
            names.append(p + "self_attn.k_norm.weight")
        names.append(p + "post_attention_layernorm.weight")
        for n in ("gate", "up", "down"):
            names.append(p + f"mlp.{n}_proj.weight")
            if cfg.mlp_bias:
                names.append(p + f"mlp.{n}_proj.bias")
    names.append("model.norm.weight")
    if not cfg.tie_word_embeddings:
        names.append("lm_head.weight")
    return names


def param_shapes(cfg):
    H, I, V, hd = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.head_dim
    q_out, kv_out = cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd
    shp = {}
    for n in param_names(cfg):
        if n == "model.embed_tokens.weight" or n == "lm_head.weight":
            s = (V, H)
        elif n.endswith("layernorm.weight") or n == "model.norm.weight":
            s = (H,)
        elif n.endswith("q_norm.weight") or n.endswith("k_norm.weight"):
            s = (hd,)
        else:
            kind = n.split(".")[-2]
            out_in = {"q_proj": (q_out, H), "k_proj": (kv_out, H), "v_proj": (kv_out, H), "o_proj": (H, q_out),
                      "gate_proj": (I, H), "up_proj": (I, H), "down_proj": (H, I)}[kind]
            s = out_in if n.endswith(".weight") else (out_in[0],)
        shp[n] = s
    return shp


# ----------------------------------------------------------------------------- model
class LlamaRef:
    """Functional model over a dict of parameter tensors (HF names)."""

    def __init__(self, cfg, params, dtype=torch.float64, precision="hf"):
        self.cfg = cfg
        self.dtype = dtype
        self.precision = precision
        names = param_names(cfg)
        missing = [n for n in names if n not in params]
        extra = [n for n in params if n not in names]
        assert not missing, f"missing params {missing}"
        assert not extra, f"unexpected params {extra}"
        shapes = param_shapes(cfg)
        self.params = OrderedDict()
        for n in names:
            assert tuple(params[n].shape) == shapes[n], (n, tuple(params[n].shape), shapes[n])
            self.params[n] = params[n].detach().to(dtype).clone().requires_grad_(True)

    def p(self, n):
        return self.params[n]

    def lm_head_weight(self):
        return self.p("model.embed_tokens.weight") if self.cfg.tie_word_embeddings else self.p("lm_head.weight")

    def rmsnorm(self, x, w):
        if self.precision == "hf":
            h = x.to(torch.float32)
        else:
            h = x
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.cfg.rms_norm_eps)
        return w * h.to(x.dtype)

    def linear(self, x, name):
        w = self.p(name + ".weight")
        b = self.params.get(name + ".bias")
        return F.linear(x, w, b)

    def attention_mask_4d(self, attention_mask, T):
        """Additive [B,1,T,T] mask: 0 where query i may attend key j (j <= i and attention_mask[b,j]==1, and
        j > i - sliding_window with a window), finfo(dtype).min elsewhere (HF eager mask)."""
        B = attention_mask.shape[0]
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        if self.cfg.sliding_window is not None:
            i = torch.arange(T)[:, None]
            j = torch.arange(T)[None, :]
            causal = causal & (j > i - self.cfg.sliding_window)
        keep = causal[None, :, :] & attention_mask.bool()[:, None, :]
        m = torch.zeros(B, 1, T, T, dtype=self.dtype)
        return m.masked_fill(~keep[:, None], torch.finfo(self.dtype).min)

    def forward(self, input_ids, attention_mask=None):
        cfg = self.cfg
        B, T = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones(B, T, dtype=torch.int64)
        x = F.embedding(input_ids.long(), self.p("model.embed_tokens.weight"))
        cos, sin = rope_cos_sin(cfg, T, self.dtype, self.precision)
        mask = self.attention_mask_4d(attention_mask, T)
        nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        scaling = hd ** -0.5
        for i in range(cfg.num_hidden_layers):
            pre = f"model.layers.{i}."
            h = self.rmsnorm(x, self.p(pre + "input_layernorm.weight"))
            q = self.linear(h, pre + "self_attn.q_proj").view(B, T, nh, hd)
            k = self.linear(h, pre + "self_attn.k_proj").view(B, T, nkv, hd)
            if cfg.qk_norm:  # qwen3: RMSNorm over each head's vector, before RoPE
                q = self.rmsnorm(q, self.p(pre + "self_attn.q_norm.weight"))
                k = self.rmsnorm(k, self.p(pre + "self_attn.k_norm.weight"))
            q, k = q.transpose(1, 2), k.transpose(1, 2)
            v = self.linear(h, pre + "self_attn.v_proj").view(B, T, nkv, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = repeat_kv(k, nh // nkv)
            v = repeat_kv(v, nh // nkv)
            att = torch.matmul(q, k.transpose(2, 3)) * scaling
            att = att + mask
            if self.precision == "hf":
                att = F.softmax(att, dim=-1, dtype=torch.float32).to(q.dtype)
            else:
                att = F.softmax(att, dim=-1)
            o = torch.matmul(att, v).transpose(1, 2).reshape(B, T, nh * hd)
            x = x + self.linear(o, pre + "self_attn.o_proj")
            h = self.rmsnorm(x, self.p(pre + "post_attention_layernorm.weight"))
            g = self.linear(h, pre + "mlp.gate_proj")
            u = self.linear(h, pre + "mlp.up_proj")
            x = x + self.linear(F.silu(g) * u, pre + "mlp.down_proj")
        x = self.rmsnorm(x, self.p("model.norm.weight"))
        return F.linear(x, self.lm_head_weight())

    # HF ForCausalLMLoss
    def causal_lm_loss(self, logits, labels, num_items_in_batch=None):
        """HF ForCausalLMLoss. HF does `logits = logits.float()` first: in a float64 model that is a *downcast*,
        so the HF loss (and d loss/d logits) is float32. precision='hf' reproduces it; 'f64' keeps float64."""
        return causal_lm_loss(logits, labels, num_items_in_batch, upcast=(self.precision == "hf"))

    @staticmethod
    def token_losses(logits, labels):
        """[B, T-1] per-token CE on shifted labels, 0 where ignored (computed in the logits' dtype)."""
        B, T, V = logits.shape
        sl = logits[:, :-1, :].reshape(-1, V)
        tl = labels[:, 1:].long().reshape(-1)
        return F.cross_entropy(sl, tl, ignore_index=IGNORE_INDEX, reduction="none").view(B, T - 1)

    def zero_grad(self):
        for p in self.params.values():
            p.grad = None

    def grads(self):
        return OrderedDict((n, p.grad.detach().clone()) for n, p in self.params.items())

    @torch.no_grad()
    def greedy(self, prompt, new_tokens=12):
        ids = prompt.long().clone()
        for _ in range(new_tokens):
            logits = self.forward(ids)
            nxt = logits[:, -1, :].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
        return ids


def causal_lm_loss(logits, labels, num_items_in_batch=None, upcast=True):
    """transformers ForCausalLMLoss + fixed_cross_entropy."""
    if upcast:
        logits = logits.float()
    labels = F.pad(labels.long(), (0, 1), value=IGNORE_INDEX)
    shift = labels[..., 1:].contiguous()
    lf = logits.reshape(-1, logits.shape[-1])
    sf = shift.reshape(-1)
    if num_items_in_batch is None:
        return F.cross_entropy(lf, sf, ignore_index=IGNORE_INDEX, reduction="mean")
    return F.cross_entropy(lf, sf, ignore_index=IGNORE_INDEX, reduction="sum") / num_items_in_batch


def count_items(labels):
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


def run_reference(model, input_ids, attention_mask, labels, prompt, new_tokens=12, ga_split=1):
    """Everything a reference.safetensors holds (in float64 / int64 before casting)."""
    out = OrderedDict()
    model.zero_grad()
    logits = model.forward(input_ids, attention_mask)
    loss = model.causal_lm_loss(logits, labels)
    loss.backward()
    grads = model.grads()
    with torch.no_grad():
        token_loss = model.token_losses(logits.detach(), labels)
    # gradient accumulation: micro-batches rows [0:ga_split] and [ga_split:B], each normalised by the step's count
    n_items = count_items(labels)
    model.zero_grad()
    acc = None
    for sl in (slice(0, ga_split), slice(ga_split, input_ids.shape[0])):
        lg = model.forward(input_ids[sl], attention_mask[sl])
        l = model.causal_lm_loss(lg, labels[sl], num_items_in_batch=n_items)
        l.backward()
    ga = model.grads()
    # as stored (F32 grads) -- this is what hf-llama-tiny's ga_max_abs_diff_vs_full holds (0.0) -- and in float64
    ga_diff = max(float((ga[n].float() - grads[n].float()).abs().max()) for n in grads)
    ga_diff64 = max(float((ga[n] - grads[n]).abs().max()) for n in grads)
    model.zero_grad()
    greedy = model.greedy(prompt, new_tokens)
    out["logits"] = logits.detach()
    out["loss"] = loss.detach().reshape(1)
    out["token_loss"] = token_loss
    out["grads"] = grads
    out["ga_max_abs_diff_vs_full"] = ga_diff
    out["ga_max_abs_diff_vs_full_f64"] = ga_diff64
    out["ga_grads"] = ga
    out["n_items"] = n_items
    out["greedy_out"] = greedy
    return out
