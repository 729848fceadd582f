"""Makes real attention tensors with a small random-weight PyTorch model and
writes them the ways researchers do (np.save, np.savez, np.savez_compressed,
safetensors through docs/recipes/attnscope_save.py), in every dtype and
layout attnscope reads, plus generate()-style per-step attentions.

Usage: python3 sources_torch.py OUT_DIR
Writes the files, and for each case the values attnscope must read
([Tq, H, Tk] of the picked sequence, float64 little-endian, C order) and
manifest.json describing the cases.
"""

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "docs", "recipes"))
from attnscope_save import save_npz, save_safetensors  # noqa: E402
from plain_pytorch import CausalSelfAttention  # noqa: E402

out_dir = sys.argv[1]
torch.manual_seed(12)
D, HEADS, LAYERS, VOCAB = 32, 4, 3, 50
embed = torch.nn.Embedding(VOCAB, D)
blocks = torch.nn.ModuleList(CausalSelfAttention(D, HEADS) for _ in range(LAYERS))
unembed = torch.nn.Linear(D, VOCAB)


def forward(ids):
    """Runs the model; returns logits and per-layer [b, h, q, k] patterns."""
    x = embed(ids)
    patterns = []
    for block in blocks:
        x = x + block(x)
        patterns.append(block.pattern)
    return unembed(x), patterns


def generate(ids, new_tokens):
    """Greedy decoding; attentions shaped as transformers' generate() returns them:
    step 0 [b, h, P, P], step i [b, h, 1, P + i]."""
    steps = []
    for s in range(new_tokens):
        logits, patterns = forward(ids)
        steps.append(tuple(p if s == 0 else p[:, :, -1:, :] for p in patterns))
        ids = torch.cat([ids, logits[:, -1:].argmax(-1)], dim=1)
    return ids, steps


cases = []


def expect(name, file, layers, options=None, prompt_len=None, tokens=None):
    """Records a case: layers is {layer: [Tq, H, Tk] tensor} as attnscope must read it."""
    refs = {}
    for layer, t in layers.items():
        ref = f"case{len(cases)}.layer{layer}.f64"
        t.detach().double().contiguous().numpy().astype("<f8").tofile(os.path.join(out_dir, ref))
        refs[str(layer)] = {"file": ref, "shape": list(t.shape)}
    cases.append({"name": name, "file": file, "options": options or {}, "layers": refs,
                  "promptLen": prompt_len, "tokens": tokens,
                  "f64": any(t.dtype == torch.float64 for t in layers.values())})


def qhk(pattern, batch=0):
    """[b, h, q, k] -> the [q, h, k] attnscope holds for one sequence."""
    return pattern[batch].permute(1, 0, 2)


with torch.no_grad():
    T = 9
    ids = torch.randint(0, VOCAB, (2, T))
    _, patterns = forward(ids)
    tokens = [f"tok{i}" for i in range(T)]
    path = lambda f: os.path.join(out_dir, f)  # noqa: E731

    # transformers-style: out.attentions, [batch, heads, q, k] per layer.
    for dtype, tag in [(torch.float32, "f32"), (torch.float16, "f16"),
                       (torch.bfloat16, "bf16"), (torch.float64, "f64")]:
        typed = [p.to(dtype) for p in patterns]
        save_safetensors(path(f"fwd_{tag}.safetensors"), typed, tokens=tokens)
        expect(f"safetensors {tag}", f"fwd_{tag}.safetensors",
               {l: qhk(p) for l, p in enumerate(typed)}, tokens=tokens)
        # numpy has no bfloat16: the recipe upcasts, so attnscope reads float32.
        save_npz(path(f"fwd_{tag}.npz"), typed, tokens=tokens, compressed=(tag != "f32"))
        read = [p.float() if dtype == torch.bfloat16 else p for p in typed]
        expect(f"npz {tag}", f"fwd_{tag}.npz", {l: qhk(p) for l, p in enumerate(read)},
               tokens=tokens)

    # The second sequence of the batch.
    expect("npz batch 1", "fwd_f32.npz", {l: qhk(p, 1) for l, p in enumerate(patterns)},
           options={"batch": 1}, tokens=tokens)

    # TransformerLens: cache["pattern", L] is blocks.L.attn.hook_pattern.
    np.savez(path("tl.npz"), **{f"blocks.{l}.attn.hook_pattern": p.numpy()
                                for l, p in enumerate(patterns)})
    expect("TransformerLens names", "tl.npz", {l: qhk(p) for l, p in enumerate(patterns)})

    # np.save of one layer in each layout and .npy version, byte order and order.
    one = patterns[1]
    np.save(path("bhqk.npy"), one.numpy())
    expect("npy batch head query key", "bhqk.npy", {0: qhk(one)})
    np.save(path("hqk.npy"), one[0].numpy())
    expect("npy head query key", "hqk.npy", {0: qhk(one)})
    np.save(path("qhk.npy"), qhk(one).contiguous().numpy())
    expect("npy query head key (vLLM's wire)", "qhk.npy", {0: qhk(one)},
           options={"layout": "query head key"})
    stacked = torch.stack(patterns)  # [layer, batch, head, q, k]
    np.save(path("lbhqk.npy"), stacked.numpy())
    expect("npy layer batch head query key", "lbhqk.npy",
           {l: qhk(p) for l, p in enumerate(patterns)})
    np.save(path("big_endian.npy"), one[0].numpy().astype(">f4"))
    expect("npy big-endian >f4", "big_endian.npy", {0: qhk(one)})
    np.save(path("fortran.npy"), np.asfortranarray(one[0].double().numpy()))
    expect("npy fortran_order f8", "fortran.npy", {0: qhk(one.double())})
    np.save(path("f16.npy"), one[0].half().numpy())
    expect("npy <f2", "f16.npy", {0: qhk(one.half())})
    for version in [(2, 0), (3, 0)]:
        name = f"v{version[0]}.npy"
        with open(path(name), "wb") as f:
            np.lib.format.write_array(f, one[0].numpy(), version=version)
        expect(f"npy format {version[0]}.0", name, {0: qhk(one)})

    # An explicit name -> layer map.
    np.savez(path("named.npz"), first=patterns[0].numpy(), second=patterns[2].numpy())
    expect("npz with a layers map", "named.npz", {4: qhk(patterns[0]), 7: qhk(patterns[2])},
           options={"layers": {"first": 4, "second": 7}})

    # generate(): prompt block, then one row per generated token.
    P, NEW = 6, 5
    full, steps = generate(ids[:1, :P], NEW)
    T_gen = P + NEW - 1
    assembled = {}
    for l in range(LAYERS):
        a = torch.zeros(T_gen, HEADS, T_gen, dtype=torch.float32)
        a[:P, :, :P] = qhk(steps[0][l])
        for s in range(1, NEW):
            a[P + s - 1, :, :P + s] = steps[s][l][0, :, 0, :]
        assembled[l] = a
    gen_tokens = [f"g{int(i)}" for i in full[0]]
    save_npz(path("generate.npz"), steps, tokens=gen_tokens, steps=True)
    expect("generate() steps, npz", "generate.npz", assembled, prompt_len=P, tokens=gen_tokens)
    save_safetensors(path("generate_bf16.safetensors"),
                     [[p.bfloat16() for p in layers] for layers in steps], steps=True)
    expect("generate() steps, safetensors BF16", "generate_bf16.safetensors",
           {l: a.bfloat16() for l, a in assembled.items()}, prompt_len=P)

with open(os.path.join(out_dir, "manifest.json"), "w") as f:
    json.dump(cases, f, indent=1)
