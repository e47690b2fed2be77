/*
 * Kernels of the multi-model demo (examples/multi_model.ts): the pieces of a
 * small LLM decoder, a convolutional vision model and a formant synthesizer.
 * demo_kernels_host.c has the same functions for the host backend, computing
 * the same values (float32; rounding may differ), and demo_formulas.h holds
 * the per-element formulas both share.
 *
 * Every function takes the stream first (stream.handle of a gpusched
 * stream), then device pointers and sizes, all row-major float32 unless
 * named otherwise. Each returns cudaGetLastError() after its launches as an
 * int32_t (0 = success), so a bad configuration is reported at once; faults
 * while running surface at the next synchronization. Empty sizes launch
 * nothing and succeed, since a grid of zero blocks is a launch error.
 */
#include <cuda_runtime.h>

#include <stdint.h>

#include "demo_formulas.h"

#define GSD_API extern "C" __attribute__((visibility("default")))

/* Threads per block for row reductions and element-wise kernels. */
#define THREADS 256u
/* Cap on blocks of element-wise kernels; grid-stride loops cover the rest. */
#define MAX_BLOCKS 4096u
/* Side of the square tiles of gsd_matmul. */
#define TILE 16u

static unsigned int elementwise_blocks(uint64_t n) {
  uint64_t blocks = (n + THREADS - 1) / THREADS;
  return (unsigned int)(blocks < MAX_BLOCKS ? blocks : MAX_BLOCKS);
}

#define GRID_STRIDE(i, n) \
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (uint64_t)gridDim.x * blockDim.x)

/* Sum over the block, by warp shuffles and then across warps; every thread
 * gets the result. */
static __device__ float block_sum(float v) {
  __shared__ float partial[THREADS / 32];
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  unsigned int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < blockDim.x / 32 ? partial[lane] : 0.0f;
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (lane == 0) partial[0] = v;
  }
  __syncthreads();
  float total = partial[0];
  __syncthreads(); /* partial is reused by the next reduction */
  return total;
}

/* Maximum over the block; every thread gets the result. */
static __device__ float block_max(float v) {
  __shared__ float partial[THREADS / 32];
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, offset));
  unsigned int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < blockDim.x / 32 ? partial[lane] : -INFINITY;
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, offset));
    if (lane == 0) partial[0] = v;
  }
  __syncthreads();
  float total = partial[0];
  __syncthreads();
  return total;
}

/* One block per row: y[row] = W[row, :] . x */
static __global__ void matvec_kernel(float *y, const float *w, const float *x, uint32_t cols) {
  const float *row = w + (uint64_t)blockIdx.x * cols;
  float sum = 0.0f;
  for (uint32_t c = threadIdx.x; c < cols; c += blockDim.x) sum += row[c] * x[c];
  sum = block_sum(sum);
  if (threadIdx.x == 0) y[blockIdx.x] = sum;
}

static __global__ void bias_act_kernel(float *y, const float *bias, uint32_t cols, uint64_t n, int32_t act) {
  GRID_STRIDE(i, n) { y[i] = gsd_activate(y[i] + bias[i % cols], act); }
}

static __global__ void add_kernel(float *y, const float *x, uint64_t n) {
  GRID_STRIDE(i, n) { y[i] += x[i]; }
}

/* One block per row, in place. */
static __global__ void softmax_kernel(float *x, uint32_t cols) {
  float *row = x + (uint64_t)blockIdx.x * cols;
  float m = -INFINITY;
  for (uint32_t c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, row[c]);
  m = block_max(m);
  float sum = 0.0f;
  for (uint32_t c = threadIdx.x; c < cols; c += blockDim.x) {
    float e = expf(row[c] - m);
    row[c] = e;
    sum += e;
  }
  sum = block_sum(sum);
  float inv = 1.0f / sum;
  for (uint32_t c = threadIdx.x; c < cols; c += blockDim.x) row[c] *= inv;
}

/* One block per row: the index of the row's largest value, the first one on
 * ties (as the host loop finds it). */
static __global__ void argmax_kernel(uint32_t *out, const float *x, uint32_t cols) {
  __shared__ float best_value[THREADS];
  __shared__ uint32_t best_index[THREADS];
  const float *row = x + (uint64_t)blockIdx.x * cols;
  float value = -INFINITY;
  uint32_t index = UINT32_MAX;
  for (uint32_t c = threadIdx.x; c < cols; c += blockDim.x) {
    if (row[c] > value) {
      value = row[c];
      index = c;
    }
  }
  best_value[threadIdx.x] = value;
  best_index[threadIdx.x] = index;
  __syncthreads();
  for (unsigned int half = blockDim.x / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) {
      float v = best_value[threadIdx.x + half];
      uint32_t i = best_index[threadIdx.x + half];
      if (v > best_value[threadIdx.x] || (v == best_value[threadIdx.x] && i < best_index[threadIdx.x])) {
        best_value[threadIdx.x] = v;
        best_index[threadIdx.x] = i;
      }
    }
    __syncthreads();
  }
  /* A row of NaNs (or empty) has no largest value: answer 0, as the host does. */
  if (threadIdx.x == 0) out[blockIdx.x] = best_index[0] == UINT32_MAX ? 0 : best_index[0];
}

static __global__ void embed_kernel(float *out, const float *table, const uint32_t *token, uint32_t vocab,
                                    uint32_t dim, uint32_t position) {
  const float *row = table + (uint64_t)(*token % vocab) * dim;
  for (uint32_t j = blockIdx.x * blockDim.x + threadIdx.x; j < dim; j += gridDim.x * blockDim.x) {
    out[j] = row[j] + gsd_position(position, j, dim);
  }
}

static __global__ void im2col_kernel(float *out, const float *in, uint32_t height, uint32_t width, uint32_t channels,
                                     uint32_t stride, uint64_t n) {
  GRID_STRIDE(i, n) { out[i] = gsd_im2col_value(in, i, height, width, channels, stride); }
}

/* C = A B with TILE x TILE tiles in shared memory; blocks along x cover rows
 * (the long dimension here, past gridDim.y's limit of 65535). */
static __global__ void matmul_kernel(float *c, const float *a, const float *b, uint32_t m, uint32_t n, uint32_t k) {
  __shared__ float as[TILE][TILE];
  __shared__ float bs[TILE][TILE];
  uint32_t row = blockIdx.x * TILE + threadIdx.y;
  uint32_t col = blockIdx.y * TILE + threadIdx.x;
  float sum = 0.0f;
  for (uint32_t t = 0; t < k; t += TILE) {
    as[threadIdx.y][threadIdx.x] = row < m && t + threadIdx.x < k ? a[(uint64_t)row * k + t + threadIdx.x] : 0.0f;
    bs[threadIdx.y][threadIdx.x] = t + threadIdx.y < k && col < n ? b[(uint64_t)(t + threadIdx.y) * n + col] : 0.0f;
    __syncthreads();
    for (uint32_t i = 0; i < TILE; i++) sum += as[threadIdx.y][i] * bs[i][threadIdx.x];
    __syncthreads();
  }
  if (row < m && col < n) c[(uint64_t)row * n + col] = sum;
}

static __global__ void mean_rows_kernel(float *out, const float *in, uint32_t rows_per_group, uint32_t cols,
                                        uint64_t n) {
  GRID_STRIDE(i, n) {
    uint64_t group = i / cols, col = i % cols;
    const float *first = in + group * rows_per_group * cols + col;
    float sum = 0.0f;
    for (uint32_t r = 0; r < rows_per_group; r++) sum += first[(uint64_t)r * cols];
    out[i] = sum / (float)rows_per_group;
  }
}

static __global__ void synth_kernel(float *out, const uint8_t *text, uint32_t samples_per_char, uint32_t sample_rate,
                                    uint64_t first_sample, uint64_t n) {
  GRID_STRIDE(i, n) {
    uint64_t s = first_sample + i;
    out[s] = gsd_synth_sample(text[s / samples_per_char], (uint32_t)(s % samples_per_char), samples_per_char,
                              sample_rate, (uint32_t)s);
  }
}

GSD_API int32_t gsd_matvec(void *stream, float *y, const float *w, const float *x, uint32_t rows, uint32_t cols) {
  if (rows == 0) return (int32_t)cudaSuccess;
  matvec_kernel<<<rows, THREADS, 0, (cudaStream_t)stream>>>(y, w, x, cols);
  return (int32_t)cudaGetLastError();
}

GSD_API int32_t gsd_bias_act(void *stream, float *y, const float *bias, uint32_t rows, uint32_t cols, int32_t act) {
  uint64_t n = (uint64_t)rows * cols;
  if (n == 0) return (int32_t)cudaSuccess;
  bias_act_kernel<<<elementwise_blocks(n), THREADS, 0, (cudaStream_t)stream>>>(y, bias, cols, n, act);
  return (int32_t)cudaGetLastError();
}

GSD_API int32_t gsd_add(void *stream, float *y, const float *x, uint64_t n) {
  if (n == 0) return (int32_t)cudaSuccess;
  add_kernel<<<elementwise_blocks(n), THREADS, 0, (cudaStream_t)stream>>>(y, x, n);
  return (int32_t)cudaGetLastError();
}

GSD_API int32_t gsd_softmax_rows(void *stream, float *x, uint32_t rows, uint32_t cols) {
  if (rows == 0 || cols == 0) return (int32_t)cudaSuccess;
  softmax_kernel<<<rows, THREADS, 0, (cudaStream_t)stream>>>(x, cols);
  return (int32_t)cudaGetLastError();
}

GSD_API int32_t gsd_argmax_rows(void *stream, uint32_t *out, const float *x, uint32_t rows, uint32_t cols) {
  if (rows == 0) return (int32_t)cudaSuccess;
  argmax_kernel<<<rows, THREADS, 0, (cudaStream_t)stream>>>(out, x, cols);
  return (int32_t)cudaGetLastError();
}

GSD_API int32_t gsd_embed(void *stream, float *out, const float *table, const uint32_t *token, uint32_t vocab,
                          uint32_t dim, uint32_t position) {
  if (dim == 0) return (int32_t)cudaSuccess;
  if (vocab == 0) return (int32_t)cudaErrorInvalidValue;
  embed_kernel<<<elementwise_blocks(dim), THREADS, 0, (cudaStream_t)stream>>>(out, table, token, vocab, dim,
                                                                              position);
  return (int32_t)cudaGetLastError();
}

GSD_API int32_t gsd_im2col(void *stream, float *out, const float *in, uint32_t batch, uint32_t height,
                           uint32_t width, uint32_t channels, uint32_t stride) {
  if (stride == 0) return (int32_t)cudaErrorInvalidValue;
  uint64_t n = (uint64_t)batch * gsd_out_side(height, stride) * gsd_out_side(width, stride) * 9u * channels;
  if (n == 0) return (int32_t)cudaSuccess;
  im2col_kernel<<<elementwise_blocks(n), THREADS, 0, (cudaStream_t)stream>>>(out, in, height, width, channels,
                                                                             stride, n);
  return (int32_t)cudaGetLastError();
}

GSD_API int32_t gsd_matmul(void *stream, float *c, const float *a, const float *b, uint32_t m, uint32_t n,
                           uint32_t k) {
  if (m == 0 || n == 0) return (int32_t)cudaSuccess;
  dim3 grid((m + TILE - 1) / TILE, (n + TILE - 1) / TILE);
  matmul_kernel<<<grid, dim3(TILE, TILE), 0, (cudaStream_t)stream>>>(c, a, b, m, n, k);
  return (int32_t)cudaGetLastError();
}

GSD_API int32_t gsd_mean_rows(void *stream, float *out, const float *in, uint32_t groups, uint32_t rows_per_group,
                              uint32_t cols) {
  uint64_t n = (uint64_t)groups * cols;
  if (n == 0) return (int32_t)cudaSuccess;
  if (rows_per_group == 0) return (int32_t)cudaErrorInvalidValue;
  mean_rows_kernel<<<elementwise_blocks(n), THREADS, 0, (cudaStream_t)stream>>>(out, in, rows_per_group, cols, n);
  return (int32_t)cudaGetLastError();
}

GSD_API int32_t gsd_synth(void *stream, float *out, const uint8_t *text, uint32_t first_char, uint32_t n_chars,
                          uint32_t samples_per_char, uint32_t sample_rate) {
  uint64_t n = (uint64_t)n_chars * samples_per_char;
  if (n == 0) return (int32_t)cudaSuccess;
  if (sample_rate == 0) return (int32_t)cudaErrorInvalidValue;
  synth_kernel<<<elementwise_blocks(n), THREADS, 0, (cudaStream_t)stream>>>(
      out, text, samples_per_char, sample_rate, (uint64_t)first_char * samples_per_char, n);
  return (int32_t)cudaGetLastError();
}
