// Device kernels of the forward engine (declarations and contracts in forward_kernels.cuh). Reductions run in a
// fixed tree order per block, so results do not depend on scheduling; --fmad=false keeps a*b+c rounded as written,
// like the CPU build's -ffp-contract=off.
#include "forward_kernels.cuh"

#include <algorithm>
#include <cfloat>
#include <string>
#include <vector>

#include "core/forward/forward_math.h"
#include "core/native_error.h"

namespace abl {
namespace fwd {
namespace cuda {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(size_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

/** Sum over the block in a fixed order; every thread gets the result. `scratch` holds kThreads doubles. */
__device__ double block_sum(double value, double* scratch) {
  scratch[threadIdx.x] = value;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) scratch[threadIdx.x] += scratch[threadIdx.x + stride];
    __syncthreads();
  }
  const double total = scratch[0];
  __syncthreads();
  return total;
}

__global__ void convert_kernel(const uint8_t* src, Dtype dtype, float* dst, size_t n) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = static_cast<float>(load_element(src, i, dtype));
}

__global__ void bias_kernel(float* y, size_t m, size_t n, const float* bias) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < m * n) y[i] += bias[i % n];
}

__global__ void embed_kernel(const float* table, const int32_t* tokens, const float* positions, const uint32_t* pos, size_t d,
                             float scale, float* x) {
  const size_t r = blockIdx.x;
  for (size_t i = threadIdx.x; i < d; i += blockDim.x) {
    float value = table[size_t(tokens[r]) * d + i];
    if (positions) value += positions[size_t(pos[r]) * d + i];
    x[r * d + i] = scale == 1.0f ? value : value * scale;
  }
}

__global__ void norm_kernel(const float* x, size_t ldx, const float* weight, const float* bias, bool layer_norm, float eps,
                            float* y, size_t ldy, size_t dim) {
  __shared__ double scratch[kThreads];
  const float* in = x + blockIdx.x * ldx;
  float* out = y + blockIdx.x * ldy;
  float mean = 0.0f;
  if (layer_norm) {
    double sum = 0.0;
    for (size_t i = threadIdx.x; i < dim; i += blockDim.x) sum += in[i];
    mean = static_cast<float>(block_sum(sum, scratch) / dim);
  }
  double squares = 0.0;
  for (size_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const double centered = layer_norm ? double(in[i] - mean) : double(in[i]);
    squares += centered * centered;
  }
  const float inv = 1.0f / sqrtf(static_cast<float>(block_sum(squares, scratch) / dim) + eps);
  for (size_t i = threadIdx.x; i < dim; i += blockDim.x) {
    if (layer_norm) {
      const float v = (in[i] - mean) * inv * weight[i];
      out[i] = bias ? v + bias[i] : v;
    } else {
      out[i] = weight[i] * (in[i] * inv);
    }
  }
}

__global__ void rope_kernel(float* qkv, size_t ld, unsigned heads, unsigned head_dim, unsigned rotary_dim, const uint32_t* pos,
                            const float* cos_table, const float* sin_table) {
  const size_t r = blockIdx.x;
  const unsigned half = rotary_dim / 2;
  for (unsigned head = threadIdx.x; head < heads; head += blockDim.x) {
    apply_rope(qkv + r * ld + size_t(head) * head_dim, cos_table + size_t(pos[r]) * half, sin_table + size_t(pos[r]) * half,
               rotary_dim);
  }
}

/** One block per (row, head): scores in shared memory chunks would bound the context; here they go to `scores`. */
__global__ void attention_kernel(const float* q, size_t ldq, const float* k, const float* v, size_t ldkv, const uint32_t* pos,
                                 const uint32_t* prompt_of_row, const uint32_t* first_row, unsigned heads, unsigned kv_heads,
                                 unsigned head_dim, float scale, float softcap, unsigned window, float* scores, size_t max_context,
                                 float* out, size_t ldo) {
  __shared__ double scratch[kThreads];
  const size_t r = blockIdx.x;
  const unsigned head = blockIdx.y;
  const unsigned kv_head = head / (heads / kv_heads);
  const size_t p = pos[r];
  const size_t first = window && p + 1 > window ? p + 1 - window : 0;
  const size_t base = first_row[prompt_of_row[r]];
  const float* query = q + r * ldq + size_t(head) * head_dim;
  float* weights = scores + (r * heads + head) * max_context;
  for (size_t j = first + threadIdx.x; j <= p; j += blockDim.x) {
    const float* key = k + (base + j) * ldkv + size_t(kv_head) * head_dim;
    float s = 0.0f;
    for (unsigned c = 0; c < head_dim; ++c) s += query[c] * key[c];
    s *= scale;
    if (softcap > 0.0f) s = soft_cap(s, softcap);
    weights[j - first] = s;
  }
  __syncthreads();
  const size_t count = p + 1 - first;
  // Max and sum in fixed orders (thread 0 scans; contexts are short next to the GEMMs).
  __shared__ float max_score;
  if (threadIdx.x == 0) {
    float m = -FLT_MAX;
    for (size_t j = 0; j < count; ++j) m = fmaxf(m, weights[j]);
    max_score = m;
  }
  __syncthreads();
  double partial = 0.0;
  for (size_t j = threadIdx.x; j < count; j += blockDim.x) {
    weights[j] = expf(weights[j] - max_score);
    partial += weights[j];
  }
  const float sum = static_cast<float>(block_sum(partial, scratch));
  for (unsigned c = threadIdx.x; c < head_dim; c += blockDim.x) {
    float acc = 0.0f;
    for (size_t j = 0; j < count; ++j) acc += (weights[j] / sum) * v[(base + first + j) * ldkv + size_t(kv_head) * head_dim + c];
    out[r * ldo + size_t(head) * head_dim + c] = acc;
  }
}

__global__ void activation_kernel(const float* in, size_t rows, size_t inter, bool gated, int activation, float* act) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= rows * inter) return;
  const size_t r = i / inter;
  const size_t c = i % inter;
  const size_t in_cols = gated ? 2 * inter : inter;
  const float g = in[r * in_cols + c];
  const float f = activation == 0 ? silu(g) : activation == 1 ? gelu_tanh(g) : gelu_exact(g);
  act[i] = gated ? f * in[r * in_cols + inter + c] : f;
}

__global__ void ablate_kernel(float* rows, size_t d, const float* basis, unsigned rank, float alpha) {
  __shared__ double scratch[kThreads];
  __shared__ double coefficient[64];
  float* row = rows + blockIdx.x * d;
  for (unsigned j = 0; j < rank; ++j) {
    double partial = 0.0;
    for (size_t i = threadIdx.x; i < d; i += blockDim.x) partial += double(basis[j * d + i]) * double(row[i]);
    const double total = block_sum(partial, scratch);
    if (threadIdx.x == 0) coefficient[j] = total * alpha;
    __syncthreads();
  }
  for (size_t i = threadIdx.x; i < d; i += blockDim.x) {
    double delta = 0.0;
    for (unsigned j = 0; j < rank; ++j) delta += coefficient[j] * basis[j * d + i];
    row[i] = static_cast<float>(double(row[i]) - delta);
  }
}

__global__ void add_kernel(float* x, const float* w, size_t n) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) x[i] += w[i];
}

#if !defined(ABLITERATE_WITH_CUBLAS)
constexpr unsigned kTile = 16;

/** Y[m, n] = X[m, k] · W[n, k]ᵀ with 16 × 16 shared-memory tiles; each output sums k in order. */
__global__ void gemm_tile_kernel(const float* x, size_t m, size_t k, const float* w, size_t n, float* y) {
  __shared__ float xs[kTile][kTile];
  __shared__ float ws[kTile][kTile + 1];
  const size_t row = blockIdx.y * kTile + threadIdx.y;
  const size_t col = blockIdx.x * kTile + threadIdx.x;
  float acc = 0.0f;
  for (size_t k0 = 0; k0 < k; k0 += kTile) {
    xs[threadIdx.y][threadIdx.x] = row < m && k0 + threadIdx.x < k ? x[row * k + k0 + threadIdx.x] : 0.0f;
    const size_t w_row = blockIdx.x * kTile + threadIdx.y;
    ws[threadIdx.y][threadIdx.x] = w_row < n && k0 + threadIdx.x < k ? w[w_row * k + k0 + threadIdx.x] : 0.0f;
    __syncthreads();
    for (unsigned i = 0; i < kTile; ++i) acc += xs[threadIdx.y][i] * ws[threadIdx.x][i];
    __syncthreads();
  }
  if (row < m && col < n) y[row * n + col] = acc;
}
#endif

}  // namespace

void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess) throw NativeError(error_code::kCuda, std::string(call) + ": " + cudaGetErrorString(status));
}

void convert_to_f32(const uint8_t* src, Dtype dtype, float* dst, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  convert_kernel<<<blocks_for(n), kThreads, 0, stream>>>(src, dtype, dst, n);
  check(cudaGetLastError(), "convert_kernel");
}

#if defined(ABLITERATE_WITH_CUBLAS)
namespace {
void check_cublas(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw NativeError(error_code::kCuda, std::string(call) + ": cuBLAS status " + std::to_string(static_cast<int>(status)));
  }
}
}  // namespace

GemmContext::GemmContext() { check_cublas(cublasCreate(&handle), "cublasCreate"); }
GemmContext::~GemmContext() {
  if (handle) cublasDestroy(handle);
}
#else
GemmContext::GemmContext() = default;
GemmContext::~GemmContext() = default;
#endif

void gemm_xwt(GemmContext& context, const float* x, size_t m, size_t k, const float* w, size_t n, const float* bias, float* y,
              cudaStream_t stream) {
  if (m == 0 || n == 0) return;
#if defined(ABLITERATE_WITH_CUBLAS)
  check_cublas(cublasSetStream(context.handle, stream), "cublasSetStream");
  // Pedantic fp32: no TF32 or reduced-precision shortcuts, so results stay within fp32 rounding of the CPU engine.
  check_cublas(cublasSetMathMode(context.handle, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
  const float one = 1.0f;
  const float zero = 0.0f;
  // Row-major Y[m, n] is column-major Yᵀ[n, m] = W[n, k] · Xᵀ: W row-major is column-major Wᵀ, hence OP_T on it.
  check_cublas(cublasSgemm(context.handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
                           &one, w, static_cast<int>(k), x, static_cast<int>(k), &zero, y, static_cast<int>(n)),
               "cublasSgemm");
#else
  (void)context;
  const dim3 grid(static_cast<unsigned>((n + kTile - 1) / kTile), static_cast<unsigned>((m + kTile - 1) / kTile));
  gemm_tile_kernel<<<grid, dim3(kTile, kTile), 0, stream>>>(x, m, k, w, n, y);
  check(cudaGetLastError(), "gemm_tile_kernel");
#endif
  if (bias) {
    bias_kernel<<<blocks_for(m * n), kThreads, 0, stream>>>(y, m, n, bias);
    check(cudaGetLastError(), "bias_kernel");
  }
}

void embed_rows(const float* table, const int32_t* tokens, const float* positions, const uint32_t* pos, size_t rows, size_t d,
                float scale, float* x, cudaStream_t stream) {
  if (rows == 0) return;
  embed_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(table, tokens, positions, pos, d, scale, x);
  check(cudaGetLastError(), "embed_kernel");
}

void norm_rows(const float* x, size_t rows, size_t ldx, const float* weight, const float* bias, bool layer_norm, float eps,
               float* y, size_t ldy, size_t dim, cudaStream_t stream) {
  if (rows == 0) return;
  norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, ldx, weight, bias, layer_norm, eps, y, ldy, dim);
  check(cudaGetLastError(), "norm_kernel");
}

void rope_rows(float* qkv, size_t rows, size_t ld, unsigned heads, unsigned head_dim, unsigned rotary_dim, const uint32_t* pos,
               const float* cos_table, const float* sin_table, cudaStream_t stream) {
  if (rows == 0) return;
  rope_kernel<<<static_cast<unsigned>(rows), 64, 0, stream>>>(qkv, ld, heads, head_dim, rotary_dim, pos, cos_table, sin_table);
  check(cudaGetLastError(), "rope_kernel");
}

void attention_rows(const float* q, size_t ldq, const float* k, const float* v, size_t ldkv, const uint32_t* pos,
                    const uint32_t* prompt_of_row, const uint32_t* first_row, size_t rows, unsigned heads, unsigned kv_heads,
                    unsigned head_dim, float scale, float softcap, unsigned window, float* out, size_t ldo, cudaStream_t stream) {
  if (rows == 0) return;
  // Scores for every (row, head) at once, sized by the longest context any row can have.
  size_t max_context = 0;
  std::vector<uint32_t> host_pos(rows);
  check(cudaMemcpyAsync(host_pos.data(), pos, rows * sizeof(uint32_t), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  for (uint32_t p : host_pos) max_context = std::max<size_t>(max_context, p + 1);
  float* scores = nullptr;
  check(cudaMallocAsync(&scores, rows * heads * max_context * sizeof(float), stream), "cudaMallocAsync");
  attention_kernel<<<dim3(static_cast<unsigned>(rows), heads), kThreads, 0, stream>>>(
      q, ldq, k, v, ldkv, pos, prompt_of_row, first_row, heads, kv_heads, head_dim, scale, softcap, window, scores, max_context,
      out, ldo);
  check(cudaGetLastError(), "attention_kernel");
  check(cudaFreeAsync(scores, stream), "cudaFreeAsync");
}

void activation_rows(const float* in, size_t rows, size_t inter, bool gated, int activation, float* act, cudaStream_t stream) {
  if (rows * inter == 0) return;
  activation_kernel<<<blocks_for(rows * inter), kThreads, 0, stream>>>(in, rows, inter, gated, activation, act);
  check(cudaGetLastError(), "activation_kernel");
}

void ablate_rows(float* rows, size_t count, size_t d, const float* basis, unsigned rank, float alpha, cudaStream_t stream) {
  if (count == 0) return;
  if (rank > 64) throw NativeError(error_code::kInvalidJob, "CUDA ablation supports a subspace of rank 64 at most");
  ablate_kernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(rows, d, basis, rank, alpha);
  check(cudaGetLastError(), "ablate_kernel");
}

void add_into(float* x, const float* w, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, w, n);
  check(cudaGetLastError(), "add_kernel");
}

}  // namespace cuda
}  // namespace fwd
}  // namespace abl
