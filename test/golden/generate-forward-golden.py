#!/usr/bin/env python3
"""Golden forward passes for lib/engine, produced by HF transformers on tiny random checkpoints.

Run from the repository root with a Python that has torch + transformers + safetensors (tests never run this):
    /opt/goldenv/bin/python test/golden/generate-forward-golden.py [NAME ...]
(The committed outputs were made with transformers 5.18.0 and a CPU build of torch 2.13; any CPU torch works, e.g.
`pip install --target DIR torch-*+cpu*.whl` and PYTHONPATH=DIR. Generation is deterministic: seeds are fixed.)
For every model below it writes test/golden/forward/<name>/:
- the checkpoint as `save_pretrained` writes it (config.json, model*.safetensors[, index]);
- expected.safetensors, computed by HF in fp32 (weights stored in bf16/f16 are upcast exactly when loaded):
    input_ids.<p>  I64 [T_p]             the token ids of prompt p (each prompt is run on its own, batch 1)
    hidden.<p>     F32 [L+1, T_p, d]     residual stream: index i enters decoder layer i, index L leaves the last
                                          layer (before the final norm); captured with forward hooks
    logits.<p>     F32 [T_p, vocab]      lm_head output at every position
    generated.<p>  I64 [N]               greedy continuation (generate, do_sample=False, no EOS stop)
  and, for checkpoints stored in a 16-bit dtype, the same hidden/logits computed by HF in that dtype
  (hidden_native.<p>, logits_native.<p>), to document how far a 16-bit reference is from our fp32 maths;
- expected.json: prompt lengths, dtype, generation length, and the generator's versions.

Weights are re-drawn with a larger scale than HF's init (std 0.02 gives near-uniform attention and a residual stream
dominated by the embedding, which would not test much); norm weights and biases are made non-trivial too.
"""
import json
import math
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_ROOT = os.path.join(ROOT, "test", "golden", "forward")

PROMPT_LENGTHS = [7, 12, 3]
NEW_TOKENS = 6
VOCAB = 256

BASE = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    rms_norm_eps=1e-5,
    bos_token_id=None,
    eos_token_id=None,
    pad_token_id=None,
)


def models():
    """name → (config class name, config kwargs, storage dtype, save kwargs)."""
    return {
        "llama": (
            "LlamaConfig",
            dict(BASE, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
            torch.float32,
            {},
        ),
        # Llama 3 RoPE scaling, biases on q/k/v/o (o_proj's bias is a residual writer), tied embeddings, bf16 storage.
        "llama3-tied-bf16": (
            "LlamaConfig",
            dict(
                BASE,
                num_hidden_layers=3,
                attention_bias=True,
                mlp_bias=True,
                tie_word_embeddings=True,
                rope_parameters={
                    "rope_type": "llama3",
                    "rope_theta": 500000.0,
                    "factor": 8.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 16,
                },
            ),
            torch.bfloat16,
            {},
        ),
        # Sliding window shorter than the prompts, linear RoPE scaling, f16 storage.
        "mistral-f16": (
            "MistralConfig",
            dict(BASE, sliding_window=4, head_dim=16, rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}),
            torch.float16,
            {},
        ),
        # q/k/v biases, sliding window on layers >= max_window_layers only, YaRN RoPE, sharded with an index.
        "qwen2-sharded": (
            "Qwen2Config",
            dict(
                BASE,
                use_sliding_window=True,
                sliding_window=5,
                max_window_layers=1,
                rope_parameters={
                    "rope_type": "yarn",
                    "rope_theta": 10000.0,
                    "factor": 4.0,
                    "original_max_position_embeddings": 32,
                },
            ),
            torch.float32,
            {"max_shard_size": "60KB"},
        ),
        # q_norm / k_norm, head_dim different from hidden / heads, tied embeddings.
        "qwen3": (
            "Qwen3Config",
            dict(BASE, head_dim=24, tie_word_embeddings=True, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
            torch.float32,
            {},
        ),
        # (1 + w) RMSNorm, sqrt(d) embedding scale, gelu-tanh MLP, multi-query attention, bf16 storage.
        "gemma-bf16": (
            "GemmaConfig",
            dict(BASE, num_key_value_heads=1, head_dim=16, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
            torch.bfloat16,
            {},
        ),
        # Sandwich norms, attention and final logit soft-capping, query_pre_attn_scalar, alternating sliding window.
        "gemma2": (
            "Gemma2Config",
            dict(
                BASE,
                num_hidden_layers=3,
                head_dim=16,
                query_pre_attn_scalar=24,
                sliding_window=4,
                attn_logit_softcapping=5.0,
                final_logit_softcapping=3.0,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            ),
            torch.float32,
            {},
        ),
        # q_norm / k_norm with (1 + w), local and global RoPE tables, explicit layer_types.
        "gemma3-text": (
            "Gemma3TextConfig",
            dict(
                BASE,
                num_hidden_layers=3,
                head_dim=16,
                query_pre_attn_scalar=16,
                sliding_window=4,
                layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                rope_parameters={
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                    "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
                },
            ),
            torch.float32,
            {},
        ),
        # Fused qkv_proj and gate_up_proj, partial rotary, sliding window.
        "phi3": (
            "Phi3Config",
            dict(BASE, sliding_window=5, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}),
            torch.float32,
            {},
        ),
        # Conv1D weights ([in, out]), learned positions, LayerNorm with bias, gelu_new, tied lm_head.
        "gpt2": (
            "GPT2Config",
            dict(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=64, bos_token_id=None, eos_token_id=None),
            torch.float32,
            {},
        ),
        # Per-head fused query_key_value, partial rotary (25%), parallel residual, exact gelu, f16 storage.
        "gpt-neox-f16": (
            "GPTNeoXConfig",
            dict(
                vocab_size=VOCAB,
                hidden_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=96,
                max_position_embeddings=128,
                bos_token_id=None,
                eos_token_id=None,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
            ),
            torch.float16,
            {},
        ),
        # Top-2 of 4 experts, routing weights renormalized (w1/w2/w3 names).
        "mixtral": (
            "MixtralConfig",
            dict(BASE, num_local_experts=4, num_experts_per_tok=2, intermediate_size=48, sliding_window=None),
            torch.float32,
            {},
        ),
        # Shared expert with a sigmoid gate, un-normalized top-k weights, a dense layer (mlp_only_layers), q/k/v biases.
        "qwen2-moe": (
            "Qwen2MoeConfig",
            dict(
                BASE,
                num_hidden_layers=3,
                num_experts=4,
                num_experts_per_tok=2,
                moe_intermediate_size=32,
                shared_expert_intermediate_size=48,
                mlp_only_layers=[1],
                norm_topk_prob=False,
            ),
            torch.float32,
            {},
        ),
        # Top-3 of 6, renormalized, q_norm / k_norm.
        "qwen3-moe": (
            "Qwen3MoeConfig",
            dict(BASE, head_dim=16, num_experts=6, num_experts_per_tok=3, moe_intermediate_size=32, norm_topk_prob=True),
            torch.bfloat16,
            {},
        ),
        # No pre-norms; RMSNorm after attention and after the MLP; q_norm / k_norm over the whole projection; biases.
        "olmo2": (
            "Olmo2Config",
            dict(BASE, attention_bias=True, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
            torch.float32,
            {},
        ),
        # Llama 4 text: MoE layers 0 and 2 (top-1 of 4 by sigmoid-weighted inputs, plus a shared expert, fused
        # [E, in, out] expert tensors, 2 · 24 ≠ 64 so a transposed read cannot pass) around a dense layer; layers 0-1 RoPE (interleaved pairs, llama3 scaling) with
        # L2 q/k norm and chunked attention (chunks of 4 < the prompts), layer 2 NoPE with temperature tuning
        # (floor_scale 2 so the temperature changes within the prompts).
        "llama4": (
            "Llama4TextConfig",
            dict(
                BASE,
                num_hidden_layers=3,
                head_dim=16,
                intermediate_size=24,
                intermediate_size_mlp=96,
                num_local_experts=4,
                num_experts_per_tok=1,
                moe_layers=[0, 2],
                no_rope_layers=[1, 1, 0],
                use_qk_norm=True,
                attention_chunk_size=4,
                attn_temperature_tuning=True,
                floor_scale=2,
                attn_scale=0.1,
                rope_parameters={
                    "rope_type": "llama3",
                    "rope_theta": 500000.0,
                    "factor": 8.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 16,
                },
            ),
            torch.bfloat16,
            {},
        ),
    }


def redraw_weights(model, generator):
    with torch.no_grad():
        for name, param in model.named_parameters():
            is_norm = "norm" in name or ".ln_" in name or "ln_f" in name
            if is_norm and name.endswith(".weight"):
                param.copy_(1.0 + 0.2 * torch.randn(param.shape, generator=generator))
            elif name.endswith(".bias"):
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
            elif param.dim() == 2:
                # Conv1D (GPT-2) stores [in, out]; every other matrix here is [out, in].
                fan_in = param.shape[0] if "c_attn" in name or "c_proj" in name or "c_fc" in name else param.shape[1]
                input_embedding = any(key in name for key in ("embed_tokens", "embed_in", "wte", "wpe"))
                scale = 1.0 if input_embedding else 1.5 / math.sqrt(fan_in)
                param.copy_(scale * torch.randn(param.shape, generator=generator))
            else:
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))


def capture_hidden(model, input_ids):
    """Residual stream entering every decoder layer, plus the last layer's output (before the final norm)."""
    base = getattr(model, "model", None) or getattr(model, "transformer", None) or getattr(model, "gpt_neox")
    layers = base.layers if hasattr(base, "layers") else base.h
    captured = [None] * (len(layers) + 1)
    handles = []

    def pre_hook(index):
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            captured[index] = hidden.detach().clone()

        return hook

    def post_hook(module, args, kwargs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        captured[len(layers)] = hidden.detach().clone()

    for index, layer in enumerate(layers):
        handles.append(layer.register_forward_pre_hook(pre_hook(index), with_kwargs=True))
    handles.append(layers[-1].register_forward_hook(post_hook, with_kwargs=True))
    try:
        with torch.no_grad():
            logits = model(input_ids=input_ids, use_cache=False).logits
    finally:
        for handle in handles:
            handle.remove()
    hidden = torch.stack([h[0] for h in captured]).float()  # [L+1, T, d]
    return hidden, logits[0].float()


def generate_one(name, config_class, config_kwargs, dtype, save_kwargs, seed):
    out_dir = os.path.join(OUT_ROOT, name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    generator = torch.Generator().manual_seed(seed)
    config = getattr(transformers, config_class)(**config_kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    redraw_weights(model, generator)
    model.to(dtype).save_pretrained(out_dir, **save_kwargs)
    for extra in ("generation_config.json",):
        path = os.path.join(out_dir, extra)
        if os.path.exists(path):
            os.remove(path)

    reference = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32, attn_implementation="eager").eval()
    native = None
    if dtype != torch.float32:
        native = AutoModelForCausalLM.from_pretrained(out_dir, dtype=dtype, attn_implementation="eager").eval()

    tensors = {}
    for p, length in enumerate(PROMPT_LENGTHS):
        ids = torch.randint(0, VOCAB, (1, length), generator=generator)
        hidden, logits = capture_hidden(reference, ids)
        tensors[f"input_ids.{p}"] = ids[0].to(torch.int64).contiguous()
        tensors[f"hidden.{p}"] = hidden.contiguous()
        tensors[f"logits.{p}"] = logits.contiguous()
        with torch.no_grad():
            out = reference.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=0,
            )
        tensors[f"generated.{p}"] = out[0, length:].to(torch.int64).contiguous()
        if native is not None:
            hidden_native, logits_native = capture_hidden(native, ids)
            tensors[f"hidden_native.{p}"] = hidden_native.contiguous()
            tensors[f"logits_native.{p}"] = logits_native.contiguous()
    save_file(tensors, os.path.join(out_dir, "expected.safetensors"))
    meta = {
        "generator": "test/golden/generate-forward-golden.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model_type": config.model_type,
        "storage_dtype": str(dtype).replace("torch.", ""),
        "prompt_lengths": PROMPT_LENGTHS,
        "new_tokens": NEW_TOKENS,
        "num_hidden_layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
    }
    with open(os.path.join(out_dir, "expected.json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=1)
        handle.write("\n")
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"{name}: {size / 1024:.0f} KiB", file=sys.stderr)


def main():
    torch.set_num_threads(2)
    wanted = set(sys.argv[1:])
    for seed, (name, spec) in enumerate(models().items()):
        if wanted and name not in wanted:
            continue
        generate_one(name, *spec, seed=1000 + seed)


if __name__ == "__main__":
    main()
