// Per-element maths of the forward pass, shared by the CPU engine and the CUDA kernels (ABL_HD), written to
// round like HF transformers' fp32 eager code: every operation in fp32, in the order torch evaluates it.
#pragma once

#include <cmath>

#include "../host_device.h"

namespace abl {
namespace fwd {

/** torch.nn.functional.silu: x * sigmoid(x). */
ABL_FN float silu(float x) { return x * (1.0f / (1.0f + expf(-x))); }

/** gelu(approximate="tanh") (gelu_pytorch_tanh, gelu_new). */
ABL_FN float gelu_tanh(float x) {
  const float kSqrt2OverPi = 0.7978845608028654f;
  const float inner = kSqrt2OverPi * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + tanhf(inner));
}

/** Exact gelu (erf form). */
ABL_FN float gelu_exact(float x) { return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f)); }

/** Gemma 2 soft-capping: cap · tanh(x / cap). */
ABL_FN float soft_cap(float x, float cap) { return tanhf(x / cap) * cap; }

/**
 * Rotates the first rotary_dim entries of one head in place (rotate_half convention: pairs (i, i + rotary_dim/2)).
 * cos/sin hold rotary_dim / 2 values for this position.
 */
ABL_FN void apply_rope(float* head, const float* cos_values, const float* sin_values, unsigned rotary_dim) {
  const unsigned half = rotary_dim / 2;
  for (unsigned i = 0; i < half; ++i) {
    const float a = head[i];
    const float b = head[i + half];
    head[i] = a * cos_values[i] + (-b) * sin_values[i];
    head[i + half] = b * cos_values[i] + a * sin_values[i];
  }
}

}  // namespace fwd
}  // namespace abl
