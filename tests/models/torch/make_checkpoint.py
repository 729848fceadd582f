#!/usr/bin/python3
"""Writes a tiny random HF checkpoint: config.json (real HF field names),
model.safetensors (HF tensor names) and generation_config.json.

    /usr/bin/python3 make_checkpoint.py FAMILY OUT_DIR [--dtype bf16|f16|f32]
        [--tied|--untied] [--layers N] [--hidden N] [--heads N] [--kv-heads N]
        [--head-dim N] [--intermediate N] [--vocab N] [--max-positions N]
        [--sliding-window N] [--layer-types sfs...] [--query-pre-attn-scalar N]
        [--rope-scaling none|linear:F|llama3:F] [--softcap-attn X] [--softcap-final X]
        [--layout plain|transformer|mm-old|mm-new] [--shards N] [--seed N] [--eos N ...]

FAMILY is gemma3_text, llama, qwen2 or gpt2. `--layout transformer` prefixes
GPT-2 keys with `transformer.`; `mm-old`/`mm-new` write a multimodal gemma3
config (text_config) with keys under `language_model.model.` or
`model.language_model.`. `--shards N` splits the tensors into N files with a
model.safetensors.index.json. Norm weights are random, away from their
defaults; Qwen2 biases are non-zero."""
import argparse
import json
import os

import torch

from safetensors_io import write_safetensors

DT = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}
DT_NAME = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("family", choices=["gemma3_text", "llama", "qwen2", "gpt2"])
    p.add_argument("out")
    p.add_argument("--dtype", default="f32", choices=list(DT))
    p.add_argument("--tied", dest="tied", action="store_true", default=None)
    p.add_argument("--untied", dest="tied", action="store_false")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=None)
    p.add_argument("--head-dim", type=int, default=None)
    p.add_argument("--intermediate", type=int, default=64)
    p.add_argument("--vocab", type=int, default=97)
    p.add_argument("--max-positions", type=int, default=128)
    p.add_argument("--sliding-window", type=int, default=None)
    p.add_argument("--layer-types", default=None, help="one letter per layer: s sliding, f full")
    p.add_argument("--query-pre-attn-scalar", type=float, default=None)
    p.add_argument("--rope-theta", type=float, default=None)
    p.add_argument("--rope-scaling", default="none")
    p.add_argument("--softcap-attn", type=float, default=None)
    p.add_argument("--softcap-final", type=float, default=None)
    p.add_argument("--layout", default="plain", choices=["plain", "transformer", "mm-old", "mm-new"])
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=float, default=None, help="weight std (default 1/sqrt(hidden) * 1.5)")
    p.add_argument("--eos", type=int, nargs="*", default=None)
    return p.parse_args()


def rope_scaling(spec):
    if spec == "none":
        return None
    kind, factor = spec.split(":")
    if kind == "linear":
        return {"rope_type": "linear", "factor": float(factor)}
    if kind == "llama3":
        return {"rope_type": "llama3", "factor": float(factor), "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    raise SystemExit(f"unknown rope scaling {spec}")


def main():
    a = parse()
    g = torch.Generator().manual_seed(a.seed)
    std = a.scale if a.scale is not None else 1.5 / (a.hidden ** 0.5)
    rnd = lambda *shape, s=std: torch.randn(*shape, generator=g) * s
    norm = lambda n, base: base + 0.3 * torch.randn(n, generator=g)  # away from defaults
    fam = a.family
    kv = a.kv_heads or a.heads
    hd = a.head_dim or a.hidden // a.heads
    tied = a.tied if a.tied is not None else fam in ("gemma3_text", "gpt2")
    eos = a.eos if a.eos is not None else [1]
    t = {}
    if fam == "gpt2":
        d = a.hidden
        config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": a.vocab,
                  "n_positions": a.max_positions, "n_embd": d, "n_layer": a.layers, "n_head": a.heads,
                  "n_inner": a.intermediate, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
                  "bos_token_id": eos[0], "eos_token_id": eos[0], "torch_dtype": DT_NAME[a.dtype]}
        t["wte.weight"] = rnd(a.vocab, d)
        t["wpe.weight"] = rnd(a.max_positions, d, s=0.3)
        for i in range(a.layers):
            p = f"h.{i}."
            t[p + "ln_1.weight"] = norm(d, 1.0)
            t[p + "ln_1.bias"] = rnd(d, s=0.1)
            t[p + "attn.c_attn.weight"] = rnd(d, 3 * d)
            t[p + "attn.c_attn.bias"] = rnd(3 * d, s=0.1)
            t[p + "attn.c_proj.weight"] = rnd(d, d)
            t[p + "attn.c_proj.bias"] = rnd(d, s=0.1)
            t[p + "ln_2.weight"] = norm(d, 1.0)
            t[p + "ln_2.bias"] = rnd(d, s=0.1)
            t[p + "mlp.c_fc.weight"] = rnd(d, a.intermediate)
            t[p + "mlp.c_fc.bias"] = rnd(a.intermediate, s=0.1)
            t[p + "mlp.c_proj.weight"] = rnd(a.intermediate, d)
            t[p + "mlp.c_proj.bias"] = rnd(d, s=0.1)
            # Buffers old checkpoints carry; the engine must ignore them.
            t[p + "attn.bias"] = torch.tril(torch.ones(a.max_positions, a.max_positions)).view(
                1, 1, a.max_positions, a.max_positions)
            t[p + "attn.masked_bias"] = torch.tensor(-1e4)
        t["ln_f.weight"] = norm(d, 1.0)
        t["ln_f.bias"] = rnd(d, s=0.1)
        if not tied:
            raise SystemExit("gpt2 checkpoints are tied")
        prefix = "transformer." if a.layout == "transformer" else ""
        t = {prefix + k: v for k, v in t.items()}
    else:
        d = a.hidden
        gemma = fam == "gemma3_text"
        config = {"model_type": fam, "vocab_size": a.vocab, "hidden_size": d,
                  "intermediate_size": a.intermediate, "num_hidden_layers": a.layers,
                  "num_attention_heads": a.heads, "num_key_value_heads": kv, "head_dim": hd,
                  "max_position_embeddings": a.max_positions, "rms_norm_eps": 1e-6,
                  "tie_word_embeddings": tied, "eos_token_id": eos if len(eos) > 1 else eos[0],
                  "bos_token_id": 2, "torch_dtype": DT_NAME[a.dtype]}
        if a.rope_theta is not None:
            config["rope_theta"] = a.rope_theta
        rs = rope_scaling(a.rope_scaling)
        if rs:
            config["rope_scaling"] = rs
        if gemma:
            config["architectures"] = ["Gemma3ForCausalLM"]
            config["hidden_activation"] = "gelu_pytorch_tanh"
            config["query_pre_attn_scalar"] = a.query_pre_attn_scalar or hd
            config["sliding_window"] = a.sliding_window or 4
            config["rope_local_base_freq"] = 10000.0
            if a.layer_types:
                config["layer_types"] = ["sliding_attention" if ch == "s" else "full_attention"
                                         for ch in a.layer_types]
            if a.softcap_attn is not None:
                config["attn_logit_softcapping"] = a.softcap_attn
            if a.softcap_final is not None:
                config["final_logit_softcapping"] = a.softcap_final
        elif fam == "llama":
            config["architectures"] = ["LlamaForCausalLM"]
            config["hidden_act"] = "silu"
        else:
            config["architectures"] = ["Qwen2ForCausalLM"]
            config["hidden_act"] = "silu"
            if a.sliding_window:
                config["use_sliding_window"] = True
                config["sliding_window"] = a.sliding_window
                config["max_window_layers"] = 1
        base = 0.0 if gemma else 1.0
        t["model.embed_tokens.weight"] = rnd(a.vocab, d, s=(0.5 / d ** 0.5 if gemma else std))
        for i in range(a.layers):
            p = f"model.layers.{i}."
            t[p + "self_attn.q_proj.weight"] = rnd(a.heads * hd, d)
            t[p + "self_attn.k_proj.weight"] = rnd(kv * hd, d)
            t[p + "self_attn.v_proj.weight"] = rnd(kv * hd, d)
            t[p + "self_attn.o_proj.weight"] = rnd(d, a.heads * hd, s=1.0 / (a.heads * hd) ** 0.5)
            if fam == "qwen2":
                t[p + "self_attn.q_proj.bias"] = rnd(a.heads * hd, s=0.5)
                t[p + "self_attn.k_proj.bias"] = rnd(kv * hd, s=0.5)
                t[p + "self_attn.v_proj.bias"] = rnd(kv * hd, s=0.5)
            t[p + "mlp.gate_proj.weight"] = rnd(a.intermediate, d)
            t[p + "mlp.up_proj.weight"] = rnd(a.intermediate, d)
            t[p + "mlp.down_proj.weight"] = rnd(d, a.intermediate, s=1.0 / a.intermediate ** 0.5)
            t[p + "input_layernorm.weight"] = norm(d, base)
            t[p + "post_attention_layernorm.weight"] = norm(d, base)
            if gemma:
                t[p + "pre_feedforward_layernorm.weight"] = norm(d, base)
                t[p + "post_feedforward_layernorm.weight"] = norm(d, base)
                t[p + "self_attn.q_norm.weight"] = norm(hd, base)
                t[p + "self_attn.k_norm.weight"] = norm(hd, base)
        t["model.norm.weight"] = norm(d, base)
        if not tied:
            t["lm_head.weight"] = rnd(a.vocab, d)
        if a.layout in ("mm-old", "mm-new"):
            if not gemma:
                raise SystemExit("multimodal layouts are for gemma3_text")
            text = dict(config)
            text.pop("architectures")
            text.pop("torch_dtype")
            config = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
                      "text_config": text, "eos_token_id": text["eos_token_id"],
                      "torch_dtype": DT_NAME[a.dtype],
                      "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 8}}
            body = "language_model.model." if a.layout == "mm-old" else "model.language_model."
            head = "language_model.lm_head.weight" if a.layout == "mm-old" else "lm_head.weight"
            renamed = {}
            for k, v in t.items():
                renamed[head if k == "lm_head.weight" else body + k[len("model."):]] = v
            # A stand-in for the vision tower, which the engine ignores.
            vt = "vision_tower." if a.layout == "mm-old" else "model.vision_tower."
            renamed[vt + "vision_model.post_layernorm.weight"] = torch.ones(8)
            t = renamed
    os.makedirs(a.out, exist_ok=True)
    dt = DT[a.dtype]
    t = {k: (v.to(dt) if v.is_floating_point() else v) for k, v in t.items()}
    if a.shards <= 1:
        write_safetensors(os.path.join(a.out, "model.safetensors"), t, {"format": "pt"})
    else:
        names = sorted(t)
        per = -(-len(names) // a.shards)
        weight_map = {}
        total = 0
        for s in range(a.shards):
            part = names[s * per:(s + 1) * per]
            fname = f"model-{s + 1:05d}-of-{a.shards:05d}.safetensors"
            write_safetensors(os.path.join(a.out, fname), {k: t[k] for k in part}, {"format": "pt"})
            for k in part:
                weight_map[k] = fname
                total += t[k].numel() * t[k].element_size()
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": eos if len(eos) > 1 else eos[0], "bos_token_id": 2}, f, indent=2)
    print(a.out)


if __name__ == "__main__":
    main()
