// CUDA building blocks of the forward engine: the same per-element maths as the CPU engine (shared through
// native/core/forward/forward_math.h, ABL_HD), one launcher per step of a decoder layer, and an fp32 GEMM: cuBLAS
// (pedantic fp32, no TF32) when the build defines ABLITERATE_WITH_CUBLAS and links CUDA::cublas, else a tiled
// kernel of our own, so the files compile against a toolkit that ships only the runtime.
// Status: compiled when ABLITERATE_CUDA=ON; run_forward does not dispatch to it yet (see forward_device_layer.cu).
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>
#if defined(ABLITERATE_WITH_CUBLAS)
#include <cublas_v2.h>
#endif

#include "core/dtype.h"

namespace abl {
namespace fwd {
namespace cuda {

/** Throws NativeError E_CUDA naming the call when status is not success. */
void check(cudaError_t status, const char* call);

/** What the GEMM needs between calls (the cuBLAS handle when cuBLAS is used). */
class GemmContext {
 public:
  GemmContext();
  ~GemmContext();
  GemmContext(const GemmContext&) = delete;
  GemmContext& operator=(const GemmContext&) = delete;
#if defined(ABLITERATE_WITH_CUBLAS)
  cublasHandle_t handle = nullptr;
#endif
};

/** dst[i] = float(src[i]) for n elements of dtype. */
void convert_to_f32(const uint8_t* src, Dtype dtype, float* dst, size_t n, cudaStream_t stream);

/** y[m, n] = x[m, k] · w[n, k]ᵀ (+ bias[n]), all fp32 row-major; pedantic fp32 maths (no TF32). */
void gemm_xwt(GemmContext& context, const float* x, size_t m, size_t k, const float* w, size_t n, const float* bias, float* y,
              cudaStream_t stream);

/** x[r] = table[tokens[r]] (+ positions[pos[r]]) times scale, for rows r of width d. */
void embed_rows(const float* table, const int32_t* tokens, const float* positions, const uint32_t* pos, size_t rows, size_t d,
                float scale, float* x, cudaStream_t stream);

/** RMSNorm (weight already holding 1 + w where the family says so) or LayerNorm (with bias), row by row. */
void norm_rows(const float* x, size_t rows, size_t ldx, const float* weight, const float* bias, bool layer_norm, float eps,
               float* y, size_t ldy, size_t dim, cudaStream_t stream);

/** Rotates the first rotary_dim entries of `heads` heads per row; cos/sin tables are [positions][rotary_dim / 2]. */
void rope_rows(float* qkv, size_t rows, size_t ld, unsigned heads, unsigned head_dim, unsigned rotary_dim, const uint32_t* pos,
               const float* cos_table, const float* sin_table, cudaStream_t stream);

/**
 * Causal attention of each row over the keys of its prompt: row r (prompt prompt_of_row[r], position pos[r]) sees
 * keys first_row[prompt] + j for j in max(0, pos - window + 1) .. pos. k/v rows have stride ld.
 */
void attention_rows(const float* q, size_t ldq, const float* k, const float* v, size_t ldkv, const uint32_t* pos,
                    const uint32_t* prompt_of_row, const uint32_t* first_row, size_t rows, unsigned heads, unsigned kv_heads,
                    unsigned head_dim, float scale, float softcap, unsigned window, float* out, size_t ldo, cudaStream_t stream);

/** act[r][i] = f(gate[r][i]) (· up[r][i] when gated), gate/up in one [rows, 2·inter] (or [rows, inter]) buffer. */
void activation_rows(const float* in, size_t rows, size_t inter, bool gated, int activation, float* act, cudaStream_t stream);

/** rows[r] -= alpha · B (Bᵀ rows[r]) for an orthonormal basis B (rank × d). */
void ablate_rows(float* rows, size_t count, size_t d, const float* basis, unsigned rank, float alpha, cudaStream_t stream);

/** x += w over n floats. */
void add_into(float* x, const float* w, size_t n, cudaStream_t stream);

}  // namespace cuda
}  // namespace fwd
}  // namespace abl
