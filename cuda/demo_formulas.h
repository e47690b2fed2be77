/*
 * Per-element formulas of the demo kernels, shared by the CUDA kernels
 * (demo_kernels.cu) and their host versions (demo_kernels_host.c) so both
 * compute the same function. Plain C that nvcc also compiles for the device.
 */
#ifndef GSD_DEMO_FORMULAS_H
#define GSD_DEMO_FORMULAS_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define GSD_FN static __host__ __device__ inline
#else
#define GSD_FN static inline
#endif

/* Activations of gsd_bias_act. */
#define GSD_ACT_NONE 0
#define GSD_ACT_RELU 1
#define GSD_ACT_TANH 2

GSD_FN float gsd_activate(float v, int32_t act) {
  if (act == GSD_ACT_RELU) return v > 0.0f ? v : 0.0f;
  if (act == GSD_ACT_TANH) return tanhf(v);
  return v;
}

/* Sinusoidal position encoding (as in "Attention is all you need"): element j
 * of position p is sin (even j) or cos (odd j) of p / 10000^(2 floor(j/2) / dim).
 * ln(10000) = 9.2103404. */
GSD_FN float gsd_position(uint32_t position, uint32_t j, uint32_t dim) {
  float angle = (float)position * expf(-9.2103404f * (float)(j & ~1u) / (float)dim);
  return (j & 1u) ? cosf(angle) : sinf(angle);
}

/* Output side of a 3x3 convolution with padding 1. */
GSD_FN uint32_t gsd_out_side(uint32_t side, uint32_t stride) { return (side + stride - 1) / stride; }

/* Element i of the im2col matrix of NHWC images for a 3x3 convolution with
 * padding 1: row (b, oy, ox), column (ky, kx, c); zero outside the image. */
GSD_FN float gsd_im2col_value(const float *in, uint64_t i, uint32_t height, uint32_t width, uint32_t channels,
                              uint32_t stride) {
  uint32_t oh = gsd_out_side(height, stride), ow = gsd_out_side(width, stride);
  uint64_t k = 9ull * channels;
  uint64_t row = i / k;
  uint32_t col = (uint32_t)(i % k);
  uint32_t c = col % channels, tap = col / channels;
  uint32_t ox = (uint32_t)(row % ow), oy = (uint32_t)(row / ow % oh);
  uint64_t b = row / ((uint64_t)ow * oh);
  int64_t iy = (int64_t)oy * stride + tap / 3 - 1, ix = (int64_t)ox * stride + tap % 3 - 1;
  if (iy < 0 || ix < 0 || iy >= height || ix >= width) return 0.0f;
  return in[((b * height + (uint64_t)iy) * width + (uint64_t)ix) * channels + c];
}

/* A uniform value in [-1, 1) from a 32-bit hash of x (lowbias32), exact in
 * float, so host and device make the same noise. */
GSD_FN float gsd_noise(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return (float)(x >> 8) * (2.0f / 16777216.0f) - 1.0f;
}

/* Attack-decay-sustain-release envelope over one character, u in [0, 1). */
GSD_FN float gsd_envelope(float u) {
  if (u < 0.1f) return u / 0.1f;
  if (u < 0.25f) return 1.0f - 0.3f * (u - 0.1f) / 0.15f;
  if (u < 0.8f) return 0.7f;
  return 0.7f * (1.0f - u) / 0.2f;
}

/* Resonance of a formant at `center` Hz with half-width `width`, at f Hz. */
GSD_FN float gsd_resonance(float f, float center, float width) {
  float d = (f - center) / width;
  return 1.0f / (1.0f + d * d);
}

/*
 * Sample n (of samples_per_char) of character ch: silence for anything but
 * a letter; for a letter, a pitch between 110 and 180 Hz whose harmonics
 * are shaped by two formants (real vowel formants for vowels, made-up ones
 * for consonants), plus a noise burst at the start of consonants, under an
 * ADSR envelope. Phases are reduced in integers (h * f0 * n mod rate) so
 * that host and device take sines of the same small float arguments.
 * `s` is the sample's index in the whole waveform, seeding the noise.
 */
GSD_FN float gsd_synth_sample(uint8_t ch, uint32_t n, uint32_t samples_per_char, uint32_t sample_rate, uint32_t s) {
  if (ch >= 'A' && ch <= 'Z') ch = (uint8_t)(ch - 'A' + 'a');
  if (ch < 'a' || ch > 'z') return 0.0f;
  uint32_t letter = ch - 'a';
  uint32_t f0 = 110u + 10u * (letter % 8u);
  float f1, f2;
  int vowel = 1;
  switch (ch) {
    case 'a': f1 = 730.0f; f2 = 1090.0f; break;
    case 'e': f1 = 530.0f; f2 = 1840.0f; break;
    case 'i': f1 = 270.0f; f2 = 2290.0f; break;
    case 'o': f1 = 570.0f; f2 = 840.0f; break;
    case 'u': f1 = 300.0f; f2 = 870.0f; break;
    case 'y': f1 = 300.0f; f2 = 2000.0f; break;
    default:
      vowel = 0;
      f1 = (float)(250u + 37u * letter);
      f2 = (float)(1200u + 91u * letter);
  }
  float voiced = 0.0f, norm = 0.0f;
  for (uint32_t h = 1; h <= 24u && h * f0 * 2u < sample_rate; h++) {
    float gain = gsd_resonance((float)(h * f0), f1, 90.0f) + 0.6f * gsd_resonance((float)(h * f0), f2, 120.0f);
    uint32_t phase = (uint32_t)((uint64_t)h * f0 * n % sample_rate);
    voiced += gain * sinf(6.28318531f * ((float)phase / (float)sample_rate));
    norm += gain;
  }
  float u = (float)n / (float)samples_per_char;
  float value = voiced / norm;
  if (!vowel) value = 0.7f * value + gsd_noise(s) * (u < 0.35f ? 0.6f : 0.15f);
  return 0.5f * gsd_envelope(u) * value;
}

#endif
