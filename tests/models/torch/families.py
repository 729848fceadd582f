"""Plain eager PyTorch transcriptions of the four families attnscope runs,
written from HF transformers' modeling files (modeling_gemma3.py,
modeling_llama.py, modeling_qwen2.py, modeling_gpt2.py, modeling_rope_utils.py)
with their config classes' defaults. Everything runs in float32 with the
checkpoint's weights widened; the attention returned is the softmax each
layer used (after masks, GQA repeated per query head), [T, H, T]."""
import math

import torch

# ---------------------------------------------------------------- configs

GEMMA3_DEFAULTS = dict(
    vocab_size=262208, hidden_size=2304, intermediate_size=9216,
    num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4,
    head_dim=256, hidden_activation="gelu_pytorch_tanh",
    max_position_embeddings=131072, rms_norm_eps=1e-6, eos_token_id=1,
    tie_word_embeddings=True, rope_theta=1_000_000.0, attention_bias=False,
    query_pre_attn_scalar=256, sliding_window=4096, layer_types=None,
    final_logit_softcapping=None, attn_logit_softcapping=None,
    rope_scaling=None, rope_local_base_freq=10_000.0, sliding_window_pattern=6,
)
LLAMA_DEFAULTS = dict(
    vocab_size=32000, hidden_size=4096, intermediate_size=11008,
    num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=None,
    hidden_act="silu", max_position_embeddings=2048, rms_norm_eps=1e-6,
    eos_token_id=2, tie_word_embeddings=False, rope_theta=10000.0,
    rope_scaling=None, attention_bias=False, mlp_bias=False, head_dim=None,
)
QWEN2_DEFAULTS = dict(
    vocab_size=151936, hidden_size=4096, intermediate_size=22016,
    num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
    hidden_act="silu", max_position_embeddings=32768, rms_norm_eps=1e-6,
    eos_token_id=None, tie_word_embeddings=False, rope_theta=10000.0,
    rope_scaling=None, use_sliding_window=False, sliding_window=4096,
    max_window_layers=28, layer_types=None, head_dim=None,
)
GPT2_DEFAULTS = dict(
    vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
    n_inner=None, activation_function="gelu_new", layer_norm_epsilon=1e-5,
    scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False,
    eos_token_id=50256,
)


def text_config(raw):
    """The text model's config with its class defaults filled in."""
    mt = raw.get("model_type")
    if mt == "gemma3":
        c = dict(raw.get("text_config") or {})
        c.setdefault("model_type", "gemma3_text")
        if "eos_token_id" not in c and "eos_token_id" in raw:
            c["eos_token_id"] = raw["eos_token_id"]
        raw = c
        mt = "gemma3_text"
    defaults = {"gemma3_text": GEMMA3_DEFAULTS, "llama": LLAMA_DEFAULTS,
                "qwen2": QWEN2_DEFAULTS, "gpt2": GPT2_DEFAULTS}[mt]
    c = dict(defaults)
    c.update({k: v for k, v in raw.items()})
    c["model_type"] = mt
    if mt == "gpt2":
        return c
    if c.get("num_key_value_heads") is None:
        c["num_key_value_heads"] = c["num_attention_heads"]
    if c.get("head_dim") is None:
        c["head_dim"] = c["hidden_size"] // c["num_attention_heads"]
    n = c["num_hidden_layers"]
    if mt == "gemma3_text" and c.get("layer_types") is None:
        p = c["sliding_window_pattern"]
        c["layer_types"] = ["sliding_attention" if (i + 1) % p else "full_attention" for i in range(n)]
    if mt == "qwen2":
        if not c.get("use_sliding_window"):
            c["sliding_window"] = None
        if c.get("layer_types") is None:
            c["layer_types"] = ["sliding_attention" if c["sliding_window"] is not None and i >= c["max_window_layers"]
                                else "full_attention" for i in range(n)]
    if mt == "llama":
        c["layer_types"] = ["full_attention"] * n
    return c


# ---------------------------------------------------------------- pieces

def inv_freq(dim, base, scaling):
    f = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    if not scaling:
        return f
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "default":
        return f
    if kind == "linear":
        return f / scaling["factor"]
    if kind == "llama3":
        factor = scaling["factor"]
        low = scaling["low_freq_factor"]
        high = scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        low_wl = old / low
        high_wl = old / high
        wavelen = 2 * math.pi / f
        f_ll = torch.where(wavelen > low_wl, f / factor, f)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * f_ll / factor + smooth * f_ll
        medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
        return torch.where(medium, smoothed, f_ll)
    raise ValueError(f"rope type {kind}")


def rope(x, inv, positions):
    # x: [H, T, d]
    freqs = positions.float()[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    half = x.shape[-1] // 2
    rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rot * sin


def rms(x, w, eps, plus_one):
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y * ((1.0 + w) if plus_one else w)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def attend(q, k, v, scaling, window, softcap, ablate):
    # q [H,T,d], k/v [KV,T,d]
    h, t, _ = q.shape
    rep = h // k.shape[0]
    k = k.repeat_interleave(rep, dim=0)
    v = v.repeat_interleave(rep, dim=0)
    w = torch.matmul(q, k.transpose(1, 2)) * scaling
    if softcap is not None:
        w = torch.tanh(w / softcap) * softcap
    qi = torch.arange(t)[:, None]
    ki = torch.arange(t)[None, :]
    visible = ki <= qi
    if window is not None:
        visible = visible & (ki > qi - window)
    w = w.masked_fill(~visible, torch.finfo(torch.float32).min)
    p = torch.softmax(w, dim=-1, dtype=torch.float32)
    out = torch.matmul(p, v)  # [H,T,d]
    for head in ablate:
        out[head] = 0
    return p.transpose(0, 1).contiguous(), out.transpose(0, 1).reshape(t, -1)  # [T,H,T], [T,H*d]


def lin(x, w, b=None):
    y = x @ w.t()
    return y + b if b is not None else y


# ---------------------------------------------------------------- forwards

def strip_prefix(weights, family):
    """HF names -> the text model's names without `model.`/prefixes."""
    out = {}
    for name, t in weights.items():
        n = name
        for p in ("model.language_model.", "language_model.model.", "language_model.", "transformer.", "model."):
            if n.startswith(p):
                n = n[len(p):]
                break
        out[n] = t.float()
    return out


def forward(raw_config, weights, ids, ablate=(), dtype=torch.float32):
    """Full causal forward over `ids`: (logits [T, V], [attn [T, H, T] per layer])."""
    c = text_config(raw_config)
    fam = c["model_type"]
    w = strip_prefix(weights, fam)
    ids_t = torch.tensor(ids, dtype=torch.int64)
    t = len(ids)
    pos = torch.arange(t)
    attns = []
    ablate_by_layer = {}
    for layer, head in ablate:
        ablate_by_layer.setdefault(layer, []).append(head)
    if fam == "gpt2":
        d = c["n_embd"]
        nh = c["n_head"]
        hd = d // nh
        eps = c["layer_norm_epsilon"]
        ln = lambda x, p: torch.nn.functional.layer_norm(x, (d,), w[p + ".weight"], w[p + ".bias"], eps)
        x = w["wte.weight"][ids_t] + w["wpe.weight"][pos]
        for i in range(c["n_layer"]):
            p = f"h.{i}."
            hsd = ln(x, p + "ln_1")
            qkv = hsd @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
            q, k, v = qkv.split(d, dim=-1)
            q, k, v = (z.view(t, nh, hd).transpose(0, 1) for z in (q, k, v))
            scaling = 1.0
            if c["scale_attn_weights"]:
                scaling = 1.0 / (hd ** 0.5)
            if c["scale_attn_by_inverse_layer_idx"]:
                scaling = scaling / float(i + 1)
            a, o = attend(q, k, v, scaling, None, None, ablate_by_layer.get(i, []))
            attns.append(a)
            x = x + (o @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"])
            hsd = ln(x, p + "ln_2")
            hsd = gelu_tanh(hsd @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
            x = x + (hsd @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"])
        x = ln(x, "ln_f")
        head = w.get("lm_head.weight", w["wte.weight"])
        return x @ head.t(), attns

    gemma = fam == "gemma3_text"
    d = c["hidden_size"]
    nh, nkv, hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    eps = c["rms_norm_eps"]
    x = w["embed_tokens.weight"][ids_t]
    if gemma:
        x = x * torch.tensor(d ** 0.5, dtype=torch.float32).to(dtype).float()
        scaling = c["query_pre_attn_scalar"] ** -0.5
        inv_global = inv_freq(hd, c["rope_theta"], c.get("rope_scaling"))
        inv_local = inv_freq(hd, c["rope_local_base_freq"], None)
    else:
        scaling = hd ** -0.5
        inv_global = inv_local = inv_freq(hd, c["rope_theta"], c.get("rope_scaling"))
    bias_qkv = fam == "qwen2" or c.get("attention_bias", False)
    bias_o = fam != "qwen2" and c.get("attention_bias", False)
    bias_mlp = c.get("mlp_bias", False)
    for i in range(c["num_hidden_layers"]):
        p = f"layers.{i}."
        g = lambda n: w.get(p + n)
        sliding = c["layer_types"][i] == "sliding_attention"
        hsd = rms(x, w[p + "input_layernorm.weight"], eps, gemma)
        q = lin(hsd, g("self_attn.q_proj.weight"), g("self_attn.q_proj.bias") if bias_qkv else None)
        k = lin(hsd, g("self_attn.k_proj.weight"), g("self_attn.k_proj.bias") if bias_qkv else None)
        v = lin(hsd, g("self_attn.v_proj.weight"), g("self_attn.v_proj.bias") if bias_qkv else None)
        q = q.view(t, nh, hd).transpose(0, 1)
        k = k.view(t, nkv, hd).transpose(0, 1)
        v = v.view(t, nkv, hd).transpose(0, 1)
        if gemma:
            q = rms(q, w[p + "self_attn.q_norm.weight"], eps, True)
            k = rms(k, w[p + "self_attn.k_norm.weight"], eps, True)
        inv = inv_local if (gemma and sliding) else inv_global
        q = rope(q, inv, pos)
        k = rope(k, inv, pos)
        window = c["sliding_window"] if sliding else None
        softcap = c.get("attn_logit_softcapping") if gemma else None
        a, o = attend(q, k, v, scaling, window, softcap, ablate_by_layer.get(i, []))
        attns.append(a)
        o = lin(o, g("self_attn.o_proj.weight"), g("self_attn.o_proj.bias") if bias_o else None)
        if gemma:
            o = rms(o, w[p + "post_attention_layernorm.weight"], eps, True)
            x = x + o
            hsd = rms(x, w[p + "pre_feedforward_layernorm.weight"], eps, True)
        else:
            x = x + o
            hsd = rms(x, w[p + "post_attention_layernorm.weight"], eps, False)
        mb = (lambda n: g(n)) if bias_mlp else (lambda n: None)
        gate = lin(hsd, g("mlp.gate_proj.weight"), mb("mlp.gate_proj.bias"))
        up = lin(hsd, g("mlp.up_proj.weight"), mb("mlp.up_proj.bias"))
        act = gelu_tanh(gate) if gemma else torch.nn.functional.silu(gate)
        o = lin(act * up, g("mlp.down_proj.weight"), mb("mlp.down_proj.bias"))
        if gemma:
            o = rms(o, w[p + "post_feedforward_layernorm.weight"], eps, True)
        x = x + o
    x = rms(x, w["norm.weight"], eps, gemma)
    head = w.get("lm_head.weight")
    if head is None:
        head = w["embed_tokens.weight"]
    logits = x @ head.t()
    if gemma and c.get("final_logit_softcapping") is not None:
        cap = c["final_logit_softcapping"]
        logits = torch.tanh(logits / cap) * cap
    return logits, attns
