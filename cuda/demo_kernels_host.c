/*
 * Host versions of the demo kernels in demo_kernels.cu, with the same C
 * signatures and the same results (float32; rounding may differ). A
 * "launch" copies its arguments and queues a host function that runs in
 * stream order on the stream's worker (sched_launch_host_func_native).
 * Returns are libsched status codes (0 = SCHED_OK).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../libsched/include/sched.h"
#include "demo_formulas.h"

#define GSD_API __attribute__((visibility("default")))

/* Queues run(copy of args) on the stream; run frees its copy. */
static int32_t enqueue(void *stream, sched_host_fn run, const void *args, size_t size) {
  void *copy = malloc(size);
  if (copy == NULL) return SCHED_ERR_OUT_OF_MEMORY;
  memcpy(copy, args, size);
  int32_t status = sched_launch_host_func_native(stream, run, copy);
  if (status != SCHED_OK) free(copy);
  return status;
}

typedef struct matvec_args {
  float *y;
  const float *w, *x;
  uint32_t rows, cols;
} matvec_args;

static void run_matvec(void *p) {
  matvec_args *a = p;
  for (uint32_t r = 0; r < a->rows; r++) {
    const float *row = a->w + (uint64_t)r * a->cols;
    float sum = 0.0f;
    for (uint32_t c = 0; c < a->cols; c++) sum += row[c] * a->x[c];
    a->y[r] = sum;
  }
  free(a);
}

/** y[r] = W[r, :] . x for r < rows. */
GSD_API int32_t gsd_matvec(void *stream, float *y, const float *w, const float *x, uint32_t rows, uint32_t cols) {
  return enqueue(stream, run_matvec, &(matvec_args){y, w, x, rows, cols}, sizeof(matvec_args));
}

typedef struct bias_act_args {
  float *y;
  const float *bias;
  uint32_t rows, cols;
  int32_t act;
} bias_act_args;

static void run_bias_act(void *p) {
  bias_act_args *a = p;
  for (uint32_t r = 0; r < a->rows; r++) {
    float *row = a->y + (uint64_t)r * a->cols;
    for (uint32_t c = 0; c < a->cols; c++) row[c] = gsd_activate(row[c] + a->bias[c], a->act);
  }
  free(a);
}

/** y[r, c] = act(y[r, c] + bias[c]); act: 0 none, 1 relu, 2 tanh. */
GSD_API int32_t gsd_bias_act(void *stream, float *y, const float *bias, uint32_t rows, uint32_t cols, int32_t act) {
  return enqueue(stream, run_bias_act, &(bias_act_args){y, bias, rows, cols, act}, sizeof(bias_act_args));
}

typedef struct add_args {
  float *y;
  const float *x;
  uint64_t n;
} add_args;

static void run_add(void *p) {
  add_args *a = p;
  for (uint64_t i = 0; i < a->n; i++) a->y[i] += a->x[i];
  free(a);
}

/** y[i] += x[i] for i < n. */
GSD_API int32_t gsd_add(void *stream, float *y, const float *x, uint64_t n) {
  return enqueue(stream, run_add, &(add_args){y, x, n}, sizeof(add_args));
}

typedef struct rows_args {
  float *x;
  uint32_t *out;
  uint32_t rows, cols;
} rows_args;

static void run_softmax(void *p) {
  rows_args *a = p;
  for (uint32_t r = 0; r < a->rows; r++) {
    float *row = a->x + (uint64_t)r * a->cols;
    float m = -INFINITY, sum = 0.0f;
    for (uint32_t c = 0; c < a->cols; c++) m = fmaxf(m, row[c]);
    for (uint32_t c = 0; c < a->cols; c++) {
      row[c] = expf(row[c] - m);
      sum += row[c];
    }
    float inv = 1.0f / sum;
    for (uint32_t c = 0; c < a->cols; c++) row[c] *= inv;
  }
  free(a);
}

/** Softmax of each row of x, in place. */
GSD_API int32_t gsd_softmax_rows(void *stream, float *x, uint32_t rows, uint32_t cols) {
  return enqueue(stream, run_softmax, &(rows_args){x, NULL, rows, cols}, sizeof(rows_args));
}

static void run_argmax(void *p) {
  rows_args *a = p;
  for (uint32_t r = 0; r < a->rows; r++) {
    const float *row = a->x + (uint64_t)r * a->cols;
    float best = -INFINITY;
    uint32_t index = 0;
    for (uint32_t c = 0; c < a->cols; c++) {
      if (row[c] > best) {
        best = row[c];
        index = c;
      }
    }
    a->out[r] = index;
  }
  free(a);
}

/** out[r] = index of the largest value of row r (the first on ties; 0 for a row of NaNs). */
GSD_API int32_t gsd_argmax_rows(void *stream, uint32_t *out, const float *x, uint32_t rows, uint32_t cols) {
  return enqueue(stream, run_argmax, &(rows_args){(float *)x, out, rows, cols}, sizeof(rows_args));
}

typedef struct embed_args {
  float *out;
  const float *table;
  const uint32_t *token;
  uint32_t vocab, dim, position;
} embed_args;

static void run_embed(void *p) {
  embed_args *a = p;
  const float *row = a->table + (uint64_t)(*a->token % a->vocab) * a->dim;
  for (uint32_t j = 0; j < a->dim; j++) a->out[j] = row[j] + gsd_position(a->position, j, a->dim);
  free(a);
}

/** out = table[*token % vocab] + position encoding; the token id is read on the device. */
GSD_API int32_t gsd_embed(void *stream, float *out, const float *table, const uint32_t *token, uint32_t vocab,
                          uint32_t dim, uint32_t position) {
  if (vocab == 0 && dim != 0) return SCHED_ERR_INVALID_ARGUMENT;
  return enqueue(stream, run_embed, &(embed_args){out, table, token, vocab, dim, position}, sizeof(embed_args));
}

typedef struct im2col_args {
  float *out;
  const float *in;
  uint32_t height, width, channels, stride;
  uint64_t n;
} im2col_args;

static void run_im2col(void *p) {
  im2col_args *a = p;
  for (uint64_t i = 0; i < a->n; i++) {
    a->out[i] = gsd_im2col_value(a->in, i, a->height, a->width, a->channels, a->stride);
  }
  free(a);
}

/** The im2col matrix of batch NHWC images for a 3x3 convolution, padding 1. */
GSD_API int32_t gsd_im2col(void *stream, float *out, const float *in, uint32_t batch, uint32_t height,
                           uint32_t width, uint32_t channels, uint32_t stride) {
  if (stride == 0) return SCHED_ERR_INVALID_ARGUMENT;
  uint64_t n = (uint64_t)batch * gsd_out_side(height, stride) * gsd_out_side(width, stride) * 9u * channels;
  return enqueue(stream, run_im2col, &(im2col_args){out, in, height, width, channels, stride, n},
                 sizeof(im2col_args));
}

typedef struct matmul_args {
  float *c;
  const float *a, *b;
  uint32_t m, n, k;
} matmul_args;

static void run_matmul(void *p) {
  matmul_args *a = p;
  /* i-k-j order: the inner loop streams rows of B and C, and each C element
   * still sums its products in k order, as the CUDA tiles do. */
  for (uint32_t i = 0; i < a->m; i++) {
    float *crow = a->c + (uint64_t)i * a->n;
    memset(crow, 0, (size_t)a->n * sizeof(float));
    for (uint32_t k = 0; k < a->k; k++) {
      float aik = a->a[(uint64_t)i * a->k + k];
      const float *brow = a->b + (uint64_t)k * a->n;
      for (uint32_t j = 0; j < a->n; j++) crow[j] += aik * brow[j];
    }
  }
  free(a);
}

/** C[m, n] = A[m, k] B[k, n]. */
GSD_API int32_t gsd_matmul(void *stream, float *c, const float *a, const float *b, uint32_t m, uint32_t n,
                           uint32_t k) {
  return enqueue(stream, run_matmul, &(matmul_args){c, a, b, m, n, k}, sizeof(matmul_args));
}

typedef struct mean_rows_args {
  float *out;
  const float *in;
  uint32_t groups, rows_per_group, cols;
} mean_rows_args;

static void run_mean_rows(void *p) {
  mean_rows_args *a = p;
  for (uint64_t i = 0; i < (uint64_t)a->groups * a->cols; i++) {
    uint64_t group = i / a->cols, col = i % a->cols;
    const float *first = a->in + group * a->rows_per_group * a->cols + col;
    float sum = 0.0f;
    for (uint32_t r = 0; r < a->rows_per_group; r++) sum += first[(uint64_t)r * a->cols];
    a->out[i] = sum / (float)a->rows_per_group;
  }
  free(a);
}

/** out[g, c] = mean over r < rows_per_group of in[g * rows_per_group + r, c]. */
GSD_API int32_t gsd_mean_rows(void *stream, float *out, const float *in, uint32_t groups, uint32_t rows_per_group,
                              uint32_t cols) {
  if (rows_per_group == 0 && groups != 0 && cols != 0) return SCHED_ERR_INVALID_ARGUMENT;
  return enqueue(stream, run_mean_rows, &(mean_rows_args){out, in, groups, rows_per_group, cols},
                 sizeof(mean_rows_args));
}

typedef struct synth_args {
  float *out;
  const uint8_t *text;
  uint32_t first_char, n_chars, samples_per_char, sample_rate;
} synth_args;

static void run_synth(void *p) {
  synth_args *a = p;
  uint64_t first = (uint64_t)a->first_char * a->samples_per_char;
  uint64_t end = first + (uint64_t)a->n_chars * a->samples_per_char;
  for (uint64_t s = first; s < end; s++) {
    a->out[s] = gsd_synth_sample(a->text[s / a->samples_per_char], (uint32_t)(s % a->samples_per_char),
                                 a->samples_per_char, a->sample_rate, (uint32_t)s);
  }
  free(a);
}

/**
 * Waveform of characters [first_char, first_char + n_chars) of text into
 * out[first_char * samples_per_char ...), samples_per_char per character.
 */
GSD_API int32_t gsd_synth(void *stream, float *out, const uint8_t *text, uint32_t first_char, uint32_t n_chars,
                          uint32_t samples_per_char, uint32_t sample_rate) {
  if (sample_rate == 0 && n_chars != 0 && samples_per_char != 0) return SCHED_ERR_INVALID_ARGUMENT;
  return enqueue(stream, run_synth, &(synth_args){out, text, first_char, n_chars, samples_per_char, sample_rate},
                 sizeof(synth_args));
}
