#!/usr/bin/env python3
"""Golden fixtures for the architectures issue: one tiny random checkpoint per family, written by HF transformers
`save_pretrained`, plus the expected projected tensors computed here in fp64 with torch and rounded to the
checkpoint's dtype; and direction files written by the real producers (torch.save, numpy.save, gguf-py).

Run from the repository root:
    /opt/goldenv/bin/python test/golden/projection/generate.py
It needs torch, transformers, safetensors and numpy; the direction section also needs gguf-py (llama.cpp's own
writer). If the venv's torch cannot be imported (a CUDA wheel without its libraries), install the CPU wheel into
a side folder and prepend it:  PYTHONPATH=/path/to/torch-cpu /opt/goldenv/bin/python ...

For every family the script also checks the edit functionally in the real transformers model: with the expected
weights loaded, the output of every residual writer (after the post-norm, where the family has one) has no
component along r. That check, not just the tensor names, is what ties our family table to transformers.
"""
import json
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import torch
import transformers as tf
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
HIDDEN = 16
VOCAB = 32
ALPHA = 1.0
SEED = 20260101
TORCH_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
# After the edit, |r·y| / |y| over all tokens must be below this (weights rounded to the dtype, forward in fp32).
AFTER_TOLERANCE = {"F32": 1e-5, "F16": 5e-3, "BF16": 3e-2}

L = r"layers\.\d+\."


def llama_writers(prefix=r"model\.", post_norms=False):
    """(regex, orientation, post-norm name builder or None); the tensor names transformers writes."""
    attn_norm = (lambda n: re.sub(r"self_attn\.o_proj\.weight$", "post_attention_layernorm.weight", n)) if post_norms else None
    mlp_norm = (lambda n: re.sub(r"mlp\.down_proj\.weight$", "post_feedforward_layernorm.weight", n)) if post_norms else None
    return [
        (prefix + r"embed_tokens\.weight", "rows", None),
        (prefix + L + r"self_attn\.o_proj\.weight", "linear", attn_norm),
        (prefix + L + r"mlp\.down_proj\.weight", "linear", mlp_norm),
    ]


def small(**extra):
    common = dict(hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=8, vocab_size=VOCAB, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    common.update(extra)
    return common


def gemma3_multimodal():
    text = tf.Gemma3TextConfig(**small(intermediate_size=32, sliding_window=4))
    vision = tf.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=4)
    config = tf.Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4, boi_token_index=3, eoi_token_index=4, image_token_index=5)
    return tf.Gemma3ForConditionalGeneration(config)


def llama4_text_config():
    return tf.Llama4TextConfig(**small(intermediate_size=8, intermediate_size_mlp=32, num_local_experts=3, num_experts_per_tok=1, interleave_moe_layer_step=2, attention_chunk_size=8))


def llama4_multimodal():
    vision = tf.Llama4VisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=8, vision_output_dim=16, projector_input_dim=16, projector_output_dim=16, pixel_shuffle_ratio=0.5)
    config = tf.Llama4Config(text_config=llama4_text_config().to_dict(), vision_config=vision.to_dict(), boi_token_index=3, eoi_token_index=4, image_token_index=5)
    return tf.Llama4ForConditionalGeneration(config)


# transformers 5 writes the Hub layout back (language_model.model.*); 4.5x wrote model.language_model.*.
NESTED = r"(?:model\.language_model\.|language_model\.model\.)"
LLAMA4_NESTED = r"language_model\.model\."

# name, builder, dtype, writers, module accessor key
FAMILIES = [
    ("llama", lambda: tf.LlamaForCausalLM(tf.LlamaConfig(**small(intermediate_size=32))), "F32", llama_writers()),
    ("gemma", lambda: tf.GemmaForCausalLM(tf.GemmaConfig(**small(intermediate_size=32))), "F32", llama_writers()),
    ("gemma2", lambda: tf.Gemma2ForCausalLM(tf.Gemma2Config(**small(intermediate_size=32, sliding_window=4))), "BF16", llama_writers(post_norms=True)),
    ("gemma3_text", lambda: tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(**small(intermediate_size=32, sliding_window=4))), "F32", llama_writers(post_norms=True)),
    ("gemma3", gemma3_multimodal, "BF16", llama_writers(prefix=NESTED, post_norms=True)),
    ("olmo2", lambda: tf.Olmo2ForCausalLM(tf.Olmo2Config(**small(intermediate_size=32))), "F32", llama_writers(post_norms=True)),
    ("phi3", lambda: tf.Phi3ForCausalLM(tf.Phi3Config(**small(intermediate_size=32))), "F32", llama_writers()),
    (
        "gpt2",
        lambda: tf.GPT2LMHeadModel(tf.GPT2Config(n_embd=HIDDEN, n_layer=2, n_head=2, vocab_size=VOCAB, n_positions=16, bos_token_id=1, eos_token_id=2)),
        "F32",
        [
            (r"transformer\.wte\.weight", "rows", None),
            (r"transformer\.wpe\.weight", "rows", None),
            (r"transformer\.h\.\d+\.attn\.c_proj\.weight", "rows", None),
            (r"transformer\.h\.\d+\.attn\.c_proj\.bias", "bias", None),
            (r"transformer\.h\.\d+\.mlp\.c_proj\.weight", "rows", None),
            (r"transformer\.h\.\d+\.mlp\.c_proj\.bias", "bias", None),
        ],
    ),
    (
        "gpt_neox",
        lambda: tf.GPTNeoXForCausalLM(tf.GPTNeoXConfig(hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, vocab_size=VOCAB, max_position_embeddings=16, bos_token_id=1, eos_token_id=2)),
        "F16",
        [
            (r"gpt_neox\.embed_in\.weight", "rows", None),
            (r"gpt_neox\." + L + r"attention\.dense\.weight", "linear", None),
            (r"gpt_neox\." + L + r"attention\.dense\.bias", "bias", None),
            (r"gpt_neox\." + L + r"mlp\.dense_4h_to_h\.weight", "linear", None),
            (r"gpt_neox\." + L + r"mlp\.dense_4h_to_h\.bias", "bias", None),
        ],
    ),
    (
        "mixtral",
        lambda: tf.MixtralForCausalLM(tf.MixtralConfig(**small(intermediate_size=8, num_local_experts=3, num_experts_per_tok=2))),
        "F32",
        llama_writers()[:2] + [(r"model\." + L + r"block_sparse_moe\.experts\.\d+\.w2\.weight", "linear", None)],
    ),
    (
        "qwen2_moe",
        lambda: tf.Qwen2MoeForCausalLM(tf.Qwen2MoeConfig(**small(intermediate_size=32, moe_intermediate_size=8, shared_expert_intermediate_size=12, num_experts=3, num_experts_per_tok=2, mlp_only_layers=[0]))),
        "F32",
        llama_writers()
        + [
            (r"model\." + L + r"mlp\.experts\.\d+\.down_proj\.weight", "linear", None),
            (r"model\." + L + r"mlp\.shared_expert\.down_proj\.weight", "linear", None),
        ],
    ),
    (
        "qwen3_moe",
        lambda: tf.Qwen3MoeForCausalLM(tf.Qwen3MoeConfig(**small(intermediate_size=32, moe_intermediate_size=8, num_experts=3, num_experts_per_tok=2, mlp_only_layers=[0]))),
        "F32",
        llama_writers() + [(r"model\." + L + r"mlp\.experts\.\d+\.down_proj\.weight", "linear", None)],
    ),
    (
        "llama4_text",
        lambda: tf.Llama4ForCausalLM(llama4_text_config()),
        "BF16",
        [
            (r"model\.embed_tokens\.weight", "rows", None),
            (r"model\." + L + r"self_attn\.o_proj\.weight", "linear", None),
            (r"model\." + L + r"feed_forward\.down_proj\.weight", "linear", None),
            (r"model\." + L + r"feed_forward\.experts\.down_proj", "experts-rows", None),
            (r"model\." + L + r"feed_forward\.shared_expert\.down_proj\.weight", "linear", None),
        ],
    ),
    (
        "llama4",
        llama4_multimodal,
        "F32",
        [
            (LLAMA4_NESTED + r"embed_tokens\.weight", "rows", None),
            (LLAMA4_NESTED + L + r"self_attn\.o_proj\.weight", "linear", None),
            (LLAMA4_NESTED + L + r"feed_forward\.down_proj\.weight", "linear", None),
            (LLAMA4_NESTED + L + r"feed_forward\.experts\.down_proj", "experts-rows", None),
            (LLAMA4_NESTED + L + r"feed_forward\.shared_expert\.down_proj\.weight", "linear", None),
        ],
    ),
]

GEMMA_LIKE = {"gemma", "gemma2", "gemma3_text", "gemma3"}


def unit_direction():
    generator = torch.Generator().manual_seed(SEED)
    r = torch.randn(HIDDEN, dtype=torch.float64, generator=generator)
    return r / r.norm()


def randomize(model, seed):
    """Default inits leave norms at 0 or 1, which would hide the γ-aware rule; give every parameter a spread."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not param.is_floating_point():
                continue
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            param.copy_((noise * (0.5 if "norm" in name else 0.3)).to(param.dtype))


def project(weight, orientation, u):
    w = weight.to(torch.float64)
    if orientation == "linear":
        return w - ALPHA * torch.outer(u, u @ w)
    if orientation == "rows":
        return w - ALPHA * torch.outer(w @ u, u)
    if orientation == "bias":
        return w - ALPHA * u * (u @ w)
    if orientation == "experts-linear":
        return torch.stack([project(expert, "linear", u) for expert in w])
    if orientation == "experts-rows":
        return torch.stack([project(expert, "rows", u) for expert in w])
    raise ValueError(orientation)


def decoder_layers(model):
    for path in ("model.layers", "model.language_model.layers", "language_model.model.layers", "transformer.h", "gpt_neox.layers"):
        module = model
        try:
            for part in path.split("."):
                module = getattr(module, part)
            return module
        except AttributeError:
            continue
    raise RuntimeError("no decoder layers found")


def writer_modules(name, model, post_norms):
    """The modules whose outputs are added to the residual stream, found by module structure, not tensor names."""
    modules = [("embed", model.get_input_embeddings())]
    if name == "gpt2":
        modules.append(("wpe", model.transformer.wpe))
    for index, layer in enumerate(decoder_layers(model)):
        if post_norms:
            modules += [(f"{index}.post_attention_layernorm", layer.post_attention_layernorm), (f"{index}.post_feedforward_layernorm", layer.post_feedforward_layernorm)]
            continue
        for attr in ("self_attn", "attn", "attention", "mlp", "feed_forward", "block_sparse_moe"):
            if hasattr(layer, attr):
                modules.append((f"{index}.{attr}", getattr(layer, attr)))
    return modules


def r_write_fraction(name, model, post_norms, r):
    """max over writers and tokens of |r·y| / |y|, y = the writer's output (what reaches the residual stream)."""
    found = {}
    hooks = []
    for label, module in writer_modules(name, model, post_norms):
        def hook(_module, _inputs, output, label=label):
            y = output[0] if isinstance(output, tuple) else output
            y = y.to(torch.float64).reshape(-1, HIDDEN)
            found[label] = max(found.get(label, 0.0), float(((y @ r).abs() / y.norm(dim=-1).clamp_min(1e-30)).max()))
        hooks.append(module.register_forward_hook(hook))
    ids = torch.tensor([[1, 7, 9, 11, 13, 17, 19, 23]])
    with torch.no_grad():
        model(input_ids=ids)
    for handle in hooks:
        handle.remove()
    return found


def load_fp32(cls, folder):
    model = cls.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    return model


def generate_family(name, build, dtype, writers, r, manifest):
    family_dir = os.path.join(HERE, "families", name)
    model_dir = os.path.join(family_dir, "model")
    shutil.rmtree(family_dir, ignore_errors=True)
    torch.manual_seed(SEED)
    model = build()
    randomize(model, SEED + len(name))
    model = model.to(TORCH_DTYPES[dtype])
    model.save_pretrained(model_dir)
    for extra in ("generation_config.json",):
        path = os.path.join(model_dir, extra)
        if os.path.exists(path):
            os.remove(path)
    saved = load_file(os.path.join(model_dir, "model.safetensors"))
    plus_one = name in GEMMA_LIKE
    expected = {}
    targets = {}
    for tensor_name in sorted(saved):
        matches = [(orientation, post_norm) for pattern, orientation, post_norm in writers if re.fullmatch(pattern, tensor_name)]
        if not matches:
            continue
        assert len(matches) == 1, tensor_name
        orientation, post_norm = matches[0]
        u = r
        entry = {"orientation": orientation}
        if post_norm:
            norm_name = post_norm(tensor_name)
            g = saved[norm_name].to(torch.float64)
            g = 1 + g if plus_one else g
            u = g * r
            u = u / u.norm()
            entry["post_norm"] = norm_name
        expected[tensor_name] = project(saved[tensor_name], orientation, u).to(saved[tensor_name].dtype).contiguous()
        targets[tensor_name] = entry
    assert targets, f"{name}: no writer matched"
    save_file(expected, os.path.join(family_dir, "expected.safetensors"))

    # Functional check in the real model: before, writers carry r; after, none does.
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(model_dir, scratch, dirs_exist_ok=True)
        edited = dict(saved)
        edited.update(expected)
        save_file(edited, os.path.join(scratch, "model.safetensors"), metadata={"format": "pt"})
        cls = type(model)
        post_norms = any(entry.get("post_norm") for entry in targets.values())
        before = r_write_fraction(name, load_fp32(cls, model_dir), post_norms, r)
        after = r_write_fraction(name, load_fp32(cls, scratch), post_norms, r)
    worst_after = max(after.values())
    assert worst_after < AFTER_TOLERANCE[dtype], f"{name}: r-write after the edit {after}"
    assert min(before.values()) > 10 * worst_after, f"{name}: r-write before {before} not clearly above after {after}"

    config = json.load(open(os.path.join(model_dir, "config.json")))
    manifest["families"][name] = {
        "model_type": config["model_type"],
        "dtype": dtype,
        "tensors": len(saved),
        "lm_head_saved": any(n.endswith("lm_head.weight") or n == "embed_out.weight" for n in saved),
        "targets": targets,
        "r_write_before": {k: round(v, 6) for k, v in sorted(before.items())},
        "r_write_after_max": worst_after,
    }
    print(f"{name}: {len(targets)} targets of {len(saved)} tensors; r-write before ≥ {min(before.values()):.3f}, after ≤ {worst_after:.2e}")


def generate_directions(r):
    """Direction files written by the real producers, for the interop readers."""
    out = os.path.join(HERE, "directions")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    generator = torch.Generator().manual_seed(SEED + 1)
    matrix = torch.randn(3, HIDDEN, dtype=torch.float64, generator=generator)
    values = {"direction": r.tolist(), "matrix": matrix.tolist()}

    torch.save({"direction": r.to(torch.float32)}, os.path.join(out, "dict-f32.pt"))
    torch.save(matrix, os.path.join(out, "bare-f64-2d.pt"))
    # A transposed view: the storage is [HIDDEN, 3] and the tensor reads it with strides (1, 3).
    torch.save(matrix.t().contiguous().t(), os.path.join(out, "strided-f64-2d.pt"))
    torch.save({"subspace": matrix.to(torch.bfloat16), "harmless_mean": matrix[:1].to(torch.float16)}, os.path.join(out, "named-bf16-f16.pt"))
    # Two tensors viewing one storage at different offsets.
    shared = torch.cat([r, matrix.reshape(-1)])
    torch.save({"direction": shared[:HIDDEN], "harmless_mean": shared[HIDDEN : 2 * HIDDEN]}, os.path.join(out, "shared-storage.pt"))

    np.save(os.path.join(out, "direction-f32.npy"), r.numpy().astype(np.float32))
    np.save(os.path.join(out, "matrix-f64.npy"), matrix.numpy())
    np.save(os.path.join(out, "matrix-fortran.npy"), np.asfortranarray(matrix.numpy()))
    np.save(os.path.join(out, "int32.npy"), np.arange(HIDDEN, dtype=np.int32))

    import gguf  # llama.cpp's gguf-py, the writer repeng and convert scripts use for control vectors

    writer = gguf.GGUFWriter(os.path.join(out, "control-vector.gguf"), "controlvector")
    writer.add_string("controlvector.model_hint", "llama")
    writer.add_uint32("controlvector.layer_count", 3)
    for layer in (1, 2, 3):
        writer.add_tensor(f"direction.{layer}", matrix[layer - 1].numpy().astype(np.float32) if layer < 3 else r.numpy().astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    with open(os.path.join(out, "values.json"), "w") as handle:
        json.dump(values, handle)


def main():
    torch.use_deterministic_algorithms(True)
    r = unit_direction()
    os.makedirs(HERE, exist_ok=True)
    save_file({"direction": r}, os.path.join(HERE, "direction.safetensors"))
    manifest = {
        "generator": "test/golden/projection/generate.py",
        "torch": torch.__version__,
        "transformers": tf.__version__,
        "alpha": ALPHA,
        "hidden_size": HIDDEN,
        "families": {},
    }
    only = set(sys.argv[1:])
    for name, build, dtype, writers in FAMILIES:
        if only and name not in only:
            continue
        generate_family(name, build, dtype, writers, r, manifest)
    generate_directions(r)
    with open(os.path.join(HERE, "manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
        handle.write("\n")


if __name__ == "__main__":
    main()
