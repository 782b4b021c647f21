#include "roupconv/requantize.h"

#include <cmath>

#include "roupconv/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#define AXONNX_X86 1
#include <immintrin.h>
#endif

namespace axonnx::roupconv {
namespace {

void RequantizePortable(const int32_t* acc, int n, float scale, int zero_point, int lo, int hi,
                        uint8_t* out) {
  const float fmin = static_cast<float>(lo - zero_point);
  const float fmax = static_cast<float>(hi - zero_point);
  for (int i = 0; i < n; ++i) {
    float v = static_cast<float>(acc[i]) * scale;
    v = std::min(std::max(v, fmin), fmax);  // the bounds are integers: clamping commutes with rounding
    const int q = static_cast<int>(std::nearbyint(v)) + zero_point;  // default mode: half to even
    out[i] = static_cast<uint8_t>(q);
  }
}

#ifdef AXONNX_X86
__attribute__((target("avx2"))) void RequantizeAvx2(const int32_t* acc, int n, float scale,
                                                    int zero_point, int lo, int hi, uint8_t* out) {
  const __m256 vscale = _mm256_set1_ps(scale);
  const __m256 fmin = _mm256_set1_ps(static_cast<float>(lo - zero_point));
  const __m256 fmax = _mm256_set1_ps(static_cast<float>(hi - zero_point));
  const __m256i zp = _mm256_set1_epi32(zero_point);
  // The low byte of each 32-bit lane, gathered into the low 8 bytes.
  const __m256i low_bytes = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                             0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i gather = _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + i))), vscale);
    v = _mm256_min_ps(_mm256_max_ps(v, fmin), fmax);
    // cvtps2dq rounds with the MXCSR mode: round half to even, like std::nearbyint.
    const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(q, low_bytes), gather);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + i), _mm256_castsi256_si128(bytes));
  }
  if (i < n) RequantizePortable(acc + i, n - i, scale, zero_point, lo, hi, out + i);
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void RequantizeAvx512(
    const int32_t* acc, size_t ld_acc, int rows, int n, float scale, int zero_point, int lo, int hi,
    uint8_t* out, size_t ld_out) {
  const __m512 vscale = _mm512_set1_ps(scale);
  const __m512 fmin = _mm512_set1_ps(static_cast<float>(lo - zero_point));
  const __m512 fmax = _mm512_set1_ps(static_cast<float>(hi - zero_point));
  const __m512i zp = _mm512_set1_epi32(zero_point);
  const __mmask16 tail = static_cast<__mmask16>((1u << (n % 16)) - 1);
  for (int r = 0; r < rows; ++r, acc += ld_acc, out += ld_out) {
    int i = 0;
    for (; i + 16 <= n; i += 16) {
      __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(acc + i)), vscale);
      v = _mm512_min_ps(_mm512_max_ps(v, fmin), fmax);
      const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);  // half to even (MXCSR)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtepi32_epi8(q));  // low bytes
    }
    if (i < n) {  // the same, masked (vpmovdb to memory is slow on AMD: a masked xmm store)
      __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(tail, acc + i)), vscale);
      v = _mm512_min_ps(_mm512_max_ps(v, fmin), fmax);
      const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);
      _mm_mask_storeu_epi8(out + i, tail, _mm512_cvtepi32_epi8(q));
    }
  }
}

// a = u - zero as int16, transformed: round_r(a) = ((a + 2^(r-1)) >> r) << r (arithmetic
// shift: floors), or digit_j(a) = -2 a[2j+1] + a[2j] + a[2j-1] (bits of the two's complement),
// shifted left by t.shift.
#endif  // AXONNX_X86

const bool kAvx2 = Cpu().avx2;
const bool kAvx512 = Cpu().avx512;

}  // namespace

void Requantize(const int32_t* acc, int n, float scale, int zero_point, int lo, int hi,
                uint8_t* out) {
  RequantizeRows(acc, 0, 1, n, scale, zero_point, lo, hi, out, 0);
}

void RequantizeRows(const int32_t* acc, size_t ld_acc, int rows, int n, float scale, int zero_point,
                    int lo, int hi, uint8_t* out, size_t ld_out) {
#ifdef AXONNX_X86
  if (kAvx512) return RequantizeAvx512(acc, ld_acc, rows, n, scale, zero_point, lo, hi, out, ld_out);
#endif
  for (int r = 0; r < rows; ++r, acc += ld_acc, out += ld_out) {
#ifdef AXONNX_X86
    if (kAvx2) {
      RequantizeAvx2(acc, n, scale, zero_point, lo, hi, out);
      continue;
    }
#endif
    RequantizePortable(acc, n, scale, zero_point, lo, hi, out);
  }
}

}  // namespace axonnx::roupconv
