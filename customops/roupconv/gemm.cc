#include "roupconv/gemm.h"

#include "roupconv/cpu.h"
#include "roupconv/multiplier.h"
#include "roupconv/util.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#define AXONNX_X86 1
#include <immintrin.h>
#endif

namespace axonnx::roupconv {
namespace {

inline int32_t LoadPair(const int16_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// ---- portable versions ----------------------------------------------------------------------

void GemmPortable(const int16_t* weights, int nrows, const int32_t* row_of, int kp,
                  const int16_t* packed, int cols, int32_t* acc, size_t ld_acc) {
  const int kpairs = kp / 2;
  for (int t = 0; t < cols / kTile; ++t) {
    const int16_t* tile = packed + static_cast<size_t>(t) * kpairs * 2 * kTile;
    for (int i = 0; i < nrows; ++i) {
      const int16_t* w = weights + static_cast<size_t>(i) * kp;
      int32_t sum[kTile] = {};
      for (int q = 0; q < kpairs; ++q) {
        const int32_t w0 = w[2 * q], w1 = w[2 * q + 1];
        const int16_t* b = tile + static_cast<size_t>(q) * 2 * kTile;
        for (int c = 0; c < kTile; ++c) sum[c] += w0 * b[2 * c] + w1 * b[2 * c + 1];
      }
      int32_t* out = acc + static_cast<size_t>(row_of[i]) * ld_acc + t * kTile;
      for (int c = 0; c < kTile; ++c) out[c] += sum[c];
    }
  }
}

// Eight columns at a time with their sums in registers: one 8-byte load brings the eight
// activation indices of a tap (byte i of a little-endian word is column c + i).
void ErrorRowsPortable(const int32_t* rows32, const int32_t* ks, const int32_t* rows, size_t ntaps,
                       const uint8_t* index, const int64_t* off, int cols, int32_t* acc) {
  int c = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  for (; c + 8 <= cols; c += 8) {
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (size_t i = 0; i < ntaps; ++i) {
      const int32_t* row = rows32 + static_cast<size_t>(rows[i]) * kTableSize;
      uint64_t u;
      std::memcpy(&u, index + off[ks[i]] + c, sizeof u);
      s0 += row[u & 0xFF];
      s1 += row[(u >> 8) & 0xFF];
      s2 += row[(u >> 16) & 0xFF];
      s3 += row[(u >> 24) & 0xFF];
      s4 += row[(u >> 32) & 0xFF];
      s5 += row[(u >> 40) & 0xFF];
      s6 += row[(u >> 48) & 0xFF];
      s7 += row[u >> 56];
    }
    int32_t* a = acc + c;
    a[0] += s0; a[1] += s1; a[2] += s2; a[3] += s3;
    a[4] += s4; a[5] += s5; a[6] += s6; a[7] += s7;
  }
#endif
  for (size_t i = 0; i < ntaps; ++i) {
    const int32_t* row = rows32 + static_cast<size_t>(rows[i]) * kTableSize;
    const uint8_t* idx = index + off[ks[i]];
    for (int j = c; j < cols; ++j) acc[j] += row[idx[j]];
  }
}

void PackPortable(const uint8_t* index, size_t ld, int rows, int cols, const XTransform& transform,
                  int16_t* packed) {
  int16_t table[256];
  for (int u = 0; u < 256; ++u) table[u] = transform.Apply(u);
  const int kpairs = (rows + 1) / 2;
  for (int q = 0; q < kpairs; ++q) {
    const uint8_t* r0 = index + static_cast<size_t>(2 * q) * ld;
    const uint8_t* r1 = 2 * q + 1 < rows ? r0 + ld : nullptr;
    for (int t = 0; t < cols / kTile; ++t) {
      int16_t* dst = packed + (static_cast<size_t>(t) * kpairs + q) * 2 * kTile;
      const uint8_t* a = r0 + t * kTile;
      const uint8_t* b = r1 ? r1 + t * kTile : nullptr;
      for (int c = 0; c < kTile; ++c) {
        dst[2 * c] = table[a[c]];
        dst[2 * c + 1] = b ? table[b[c]] : 0;
      }
    }
  }
}

// ---- AVX2 versions --------------------------------------------------------------------------
#ifdef AXONNX_X86

template <int MR>
__attribute__((target("avx2"))) inline void GemmTileAvx2(const int16_t* weights, int kp,
                                                         const int16_t* tile, int kpairs,
                                                         int32_t* const* out) {
  __m256i lo[MR], hi[MR];
  for (int i = 0; i < MR; ++i) lo[i] = hi[i] = _mm256_setzero_si256();
  const int16_t* b = tile;
  for (int q = 0; q < kpairs; ++q, b += 2 * kTile) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + kTile));
    for (int i = 0; i < MR; ++i) {
      const __m256i w = _mm256_set1_epi32(LoadPair(weights + static_cast<size_t>(i) * kp + 2 * q));
      lo[i] = _mm256_add_epi32(lo[i], _mm256_madd_epi16(w, b0));
      hi[i] = _mm256_add_epi32(hi[i], _mm256_madd_epi16(w, b1));
    }
  }
  for (int i = 0; i < MR; ++i) {
    __m256i* o = reinterpret_cast<__m256i*>(out[i]);
    _mm256_storeu_si256(o, _mm256_add_epi32(_mm256_loadu_si256(o), lo[i]));
    _mm256_storeu_si256(o + 1, _mm256_add_epi32(_mm256_loadu_si256(o + 1), hi[i]));
  }
}

__attribute__((target("avx2"))) void GemmAvx2(const int16_t* weights, int nrows,
                                              const int32_t* row_of, int kp,
                                              const int16_t* packed, int cols, int32_t* acc,
                                              size_t ld_acc) {
  constexpr int kRows = 4;  // 8 accumulators + 2 columns + 4 broadcasts: all in the 16 ymm registers
  const int kpairs = kp / 2;
  for (int t = 0; t < cols / kTile; ++t) {
    const int16_t* tile = packed + static_cast<size_t>(t) * kpairs * 2 * kTile;
    int32_t* out[kRows];
    int i = 0;
    for (; i + kRows <= nrows; i += kRows) {
      for (int r = 0; r < kRows; ++r) out[r] = acc + static_cast<size_t>(row_of[i + r]) * ld_acc + t * kTile;
      GemmTileAvx2<kRows>(weights + static_cast<size_t>(i) * kp, kp, tile, kpairs, out);
    }
    const int rest = nrows - i;
    for (int r = 0; r < rest; ++r) out[r] = acc + static_cast<size_t>(row_of[i + r]) * ld_acc + t * kTile;
    const int16_t* w = weights + static_cast<size_t>(i) * kp;
    switch (rest) {
      case 3: GemmTileAvx2<3>(w, kp, tile, kpairs, out); break;
      case 2: GemmTileAvx2<2>(w, kp, tile, kpairs, out); break;
      case 1: GemmTileAvx2<1>(w, kp, tile, kpairs, out); break;
      default: break;
    }
  }
}

__attribute__((target("avx2"))) void ErrorRowsAvx2(const int32_t* rows32, const int32_t* ks,
                                                   const int32_t* rows, size_t ntaps, const uint8_t* index,
                                                   const int64_t* off, int cols, int32_t* acc) {
  // Tap by tap over all columns: the tap's 1 KiB error row stays in L1 for its cols/8 gathers.
  for (size_t i = 0; i < ntaps; ++i) {
    const uint8_t* idx = index + off[ks[i]];
    const int* row = reinterpret_cast<const int*>(rows32 + static_cast<size_t>(rows[i]) * kTableSize);
    int c = 0;
    for (; c + 16 <= cols; c += 16) {
      const __m128i u = _mm_loadu_si128(reinterpret_cast<const __m128i*>(idx + c));
      __m256i* o = reinterpret_cast<__m256i*>(acc + c);
      const __m256i g0 = _mm256_i32gather_epi32(row, _mm256_cvtepu8_epi32(u), 4);
      const __m256i g1 = _mm256_i32gather_epi32(row, _mm256_cvtepu8_epi32(_mm_srli_si128(u, 8)), 4);
      _mm256_storeu_si256(o, _mm256_add_epi32(_mm256_loadu_si256(o), g0));
      _mm256_storeu_si256(o + 1, _mm256_add_epi32(_mm256_loadu_si256(o + 1), g1));
    }
    for (; c < cols; ++c) acc[c] += row[idx[c]];
  }
}

#define AXONNX_VBMI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi")))

// The 64 bytes t[u] of a table of kLines 64-byte lines repeating every 64 * kLines bytes of u:
// one vpermb, one vpermi2b, or two vpermi2b and a blend on bit 7 of u (`top`).
template <int kLines>
AXONNX_VBMI inline __m512i LookupBytes(const __m512i* t, __m512i u, __mmask64 top) {
  if (kLines == 1) return _mm512_permutexvar_epi8(u, t[0]);
  if (kLines == 2) return _mm512_permutex2var_epi8(t[0], u, t[1]);
  return _mm512_mask_blend_epi8(top, _mm512_permutex2var_epi8(t[0], u, t[1]), _mm512_permutex2var_epi8(t[2], u, t[3]));
}

// Taps [i0, i1), whose rows are kLines lines a plane, looked up for kParts x 64 columns each and
// added to the sums (ErrorPlanesPart). Only a last part that is not full (kTail) loads its
// activations under its mask: a masked load costs a vector ALU instruction.
template <int kLines, int kPlanes, int kParts, bool kTail>
AXONNX_VBMI __attribute__((always_inline)) inline void LookupTaps(
    const uint8_t* planes, const int32_t* ks, const int32_t* at, size_t i0, size_t i1, const uint8_t* src,
    const int64_t* off, const __mmask64* mask, __m512i (&words)[kParts][kPlanes], __m512i (&odd)[kParts][kPlanes]) {
  for (size_t i = i0; i < i1; ++i) {
    if (kLines == 4 && kParts == 1 && i + 8 < i1) {
      // One lookup per row load: start the table rows a few taps ahead (they often miss L1).
      const char* p = reinterpret_cast<const char*>(planes) + static_cast<size_t>(at[i + 8]) * 64;
      #pragma GCC unroll 8
      for (int j = 0; j < kPlanes; ++j) {
        #pragma GCC unroll 8
        for (int q = 0; q < kLines; ++q) _mm_prefetch(p + j * kTableSize + 64 * q, _MM_HINT_T0);
      }
    }
    __m512i t[kPlanes][kLines];
    const uint8_t* p = planes + static_cast<size_t>(at[i]) * 64;
    #pragma GCC unroll 8
    for (int j = 0; j < kPlanes; ++j) {
      #pragma GCC unroll 8
      for (int q = 0; q < kLines; ++q) t[j][q] = _mm512_load_si512(p + j * kTableSize + 64 * q);
    }
    const uint8_t* x = src + off[ks[i]];
    #pragma GCC unroll 8
    for (int b = 0; b < kParts; ++b) {
      const __m512i u = kTail && b == kParts - 1 ? _mm512_maskz_loadu_epi8(mask[b], x + 64 * b)
                                                 : _mm512_loadu_si512(x + 64 * b);
      const __mmask64 top = kLines == 4 ? _mm512_movepi8_mask(u) : 0;
      #pragma GCC unroll 8
      for (int j = 0; j < kPlanes; ++j) {
        const __m512i v = LookupBytes<kLines>(t[j], u, top);
        words[b][j] = _mm512_add_epi16(words[b][j], v);
        odd[b][j] = _mm512_add_epi16(odd[b][j], _mm512_srli_epi16(v, 8));
      }
    }
  }
}

// Error rows that fit int8 (int16), as one byte plane (two), looked up for kParts x 64 columns per
// tap: taps [0, ends[0]) have 1-line rows, [ends[0], ends[1]) 2-line rows and [ends[1], ends[2])
// 4-line ones (int16 rows: 4 lines a plane). A plane's looked-up bytes are summed as uint16 words
// (word w: byte 2w + 256 byte 2w + 1) beside the sum of their odd bytes alone; for up to 256 taps
// (kLutSlice) each column's byte sum fits uint16, so even = words - 256 odd (mod 2^16) is exact.
// acc += the bytes' sums - 128 taps (one plane: the row + 128), or low + 256 (high - 128 taps).
// The small loops are unrolled by force: otherwise GCC keeps the sums and table rows in memory.
template <int kPlanes, int kParts, bool kTail>
AXONNX_VBMI void ErrorPlanesPart(const uint8_t* planes, const int32_t* ks, const int32_t* at, const size_t* ends,
                                 const uint8_t* index, const int64_t* off, const __mmask64* mask, int c0,
                                 int32_t* acc) {
  const __m512i zero = _mm512_setzero_si512();
  __m512i words[kParts][kPlanes], odd[kParts][kPlanes];
  #pragma GCC unroll 8
  for (int b = 0; b < kParts; ++b) {
    #pragma GCC unroll 8
    for (int j = 0; j < kPlanes; ++j) words[b][j] = odd[b][j] = zero;
  }
  const uint8_t* src = index + c0;
  if constexpr (kPlanes == 1) {
    LookupTaps<1, kPlanes, kParts, kTail>(planes, ks, at, 0, ends[0], src, off, mask, words, odd);
    LookupTaps<2, kPlanes, kParts, kTail>(planes, ks, at, ends[0], ends[1], src, off, mask, words, odd);
  }
  LookupTaps<4, kPlanes, kParts, kTail>(planes, ks, at, ends[1], ends[2], src, off, mask, words, odd);
  // Back to column order: per 128-bit lane, unpacklo/hi of (even, odd) sums hold its columns 0-7
  // and 8-15; the 64-bit permutes put the lanes in order.
  const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);    // columns 0..31 of a part
  const __m512i second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);  // columns 32..63
  const __m512i bias = _mm512_set1_epi32(static_cast<int32_t>(128 * ends[2]));
  #pragma GCC unroll 8
  for (int b = 0; b < kParts; ++b) {
    __m512i sums[kPlanes][2];
    #pragma GCC unroll 8
    for (int j = 0; j < kPlanes; ++j) {
      const __m512i w = words[b][j], o = odd[b][j];
      const __m512i even = _mm512_sub_epi16(w, _mm512_slli_epi16(o, 8));
      const __m512i lo = _mm512_unpacklo_epi16(even, o), hi = _mm512_unpackhi_epi16(even, o);
      sums[j][0] = _mm512_permutex2var_epi64(lo, first, hi);
      sums[j][1] = _mm512_permutex2var_epi64(lo, second, hi);
    }
    #pragma GCC unroll 8
    for (int q = 0; q < 4; ++q) {  // 16 columns each
      const __mmask16 lanes = static_cast<__mmask16>((mask[b] >> (16 * q)) & 0xFFFF);
      if (!lanes) break;
      __m512i v[kPlanes];
      #pragma GCC unroll 8
      for (int j = 0; j < kPlanes; ++j) {
        v[j] = _mm512_cvtepu16_epi32(q % 2 ? _mm512_extracti64x4_epi64(sums[j][q / 2], 1)
                                           : _mm512_castsi512_si256(sums[j][q / 2]));
      }
      const __m512i add = kPlanes == 1 ? _mm512_sub_epi32(v[0], bias)
                                       : _mm512_add_epi32(v[0], _mm512_slli_epi32(_mm512_sub_epi32(v[kPlanes - 1], bias), 8));
      int32_t* o = acc + c0 + 64 * b + 16 * q;
      _mm512_mask_storeu_epi32(o, lanes, _mm512_add_epi32(_mm512_maskz_loadu_epi32(lanes, o), add));
    }
  }
}

// The parts [c0, c0 + 64 kParts) of the columns, the last one `tail` (not full) or not.
template <int kPlanes, int kParts>
AXONNX_VBMI void ErrorPlanesParts(bool tail, const uint8_t* planes, const int32_t* ks, const int32_t* at,
                                  const size_t* ends, const uint8_t* index, const int64_t* off,
                                  const __mmask64* mask, int c0, int32_t* acc) {
  if (tail) return ErrorPlanesPart<kPlanes, kParts, true>(planes, ks, at, ends, index, off, mask, c0, acc);
  ErrorPlanesPart<kPlanes, kParts, false>(planes, ks, at, ends, index, off, mask, c0, acc);
}

// planes: 64-byte aligned rows.
template <int kPlanes>
AXONNX_VBMI void ErrorPlanesAvx512(const uint8_t* planes, const int32_t* ks, const int32_t* at, const size_t* ends,
                                   const uint8_t* index, const int64_t* off, int cols, int32_t* acc) {
  constexpr int kParts = kPlanes == 1 ? 4 : 2;  // sums and table rows within the 32 registers
  for (int c0 = 0; c0 < cols; c0 += 64 * kParts) {
    __mmask64 mask[kParts];
    int parts = 0;
    for (int b = 0; b < kParts; ++b) {
      const int n = std::clamp(cols - c0 - 64 * b, 0, 64);
      mask[b] = n == 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
      if (n > 0) parts = b + 1;
    }
    const bool tail = ~mask[parts - 1] != 0;
    switch (parts) {  // no lookups for the parts past the last column
      case 4: ErrorPlanesParts<kPlanes, kParts>(tail, planes, ks, at, ends, index, off, mask, c0, acc); break;
      case 3: ErrorPlanesParts<kPlanes, kParts < 3 ? kParts : 3>(tail, planes, ks, at, ends, index, off, mask, c0, acc); break;
      case 2: ErrorPlanesParts<kPlanes, 2>(tail, planes, ks, at, ends, index, off, mask, c0, acc); break;
      default: ErrorPlanesParts<kPlanes, 1>(tail, planes, ks, at, ends, index, off, mask, c0, acc); break;
    }
  }
}

__attribute__((target("avx2"))) inline __m256i TransformAvx2(__m256i v, const XTransform& t) {
  const int p = t.param;
  if (t.kind == XTransform::Kind::kRound) {
    if (p == 0) return v;
    const __m256i half = _mm256_set1_epi16(static_cast<int16_t>(1 << (p - 1)));
    const __m128i shift = _mm_cvtsi32_si128(p);
    return _mm256_sll_epi16(_mm256_sra_epi16(_mm256_add_epi16(v, half), shift), shift);
  }
  const __m256i one = _mm256_set1_epi16(1);
  const __m256i hi = _mm256_and_si256(_mm256_sra_epi16(v, _mm_cvtsi32_si128(2 * p + 1)), one);
  const __m256i mid = _mm256_and_si256(_mm256_sra_epi16(v, _mm_cvtsi32_si128(2 * p)), one);
  const __m256i lo = p > 0 ? _mm256_and_si256(_mm256_sra_epi16(v, _mm_cvtsi32_si128(2 * p - 1)), one)
                           : _mm256_setzero_si256();
  const __m256i digit = _mm256_sub_epi16(_mm256_add_epi16(mid, lo), _mm256_add_epi16(hi, hi));
  return _mm256_sll_epi16(digit, _mm_cvtsi32_si128(t.shift));
}

__attribute__((target("avx2"))) void PackAvx2(const uint8_t* index, size_t ld, int rows, int cols,
                                              const XTransform& transform, int16_t* packed) {
  const int kpairs = (rows + 1) / 2;
  const __m256i zero = _mm256_set1_epi16(static_cast<int16_t>(transform.zero));
  const __m256i keep_even = _mm256_set1_epi32(0x0000FFFF);  // zero the missing odd row
  for (int q = 0; q < kpairs; ++q) {
    const uint8_t* r0 = index + static_cast<size_t>(2 * q) * ld;
    const bool pair = 2 * q + 1 < rows;
    const uint8_t* r1 = pair ? r0 + ld : r0;
    for (int t = 0; t < cols / kTile; ++t) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r0 + t * kTile));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1 + t * kTile));
      __m256i v0 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b)), zero);
      __m256i v1 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(a, b)), zero);
      v0 = TransformAvx2(v0, transform);
      v1 = TransformAvx2(v1, transform);
      if (!pair) {
        v0 = _mm256_and_si256(v0, keep_even);
        v1 = _mm256_and_si256(v1, keep_even);
      }
      __m256i* dst = reinterpret_cast<__m256i*>(packed + (static_cast<size_t>(t) * kpairs + q) * 2 * kTile);
      _mm256_storeu_si256(dst, v0);
      _mm256_storeu_si256(dst + 1, v1);
    }
  }
}

#endif  // AXONNX_X86

const bool kAvx2 = Cpu().avx2;

}  // namespace

bool UsingAvx2() { return kAvx2; }

int16_t XTransform::Apply(int u) const {
  const int a = u - zero;
  return static_cast<int16_t>(kind == Kind::kRound ? RoundHalfUp(a, param)
                                                   : BoothDigit(a, param) * (1 << shift));
}

void PackColumns(const uint8_t* index, size_t ld, int rows, int cols, const XTransform& transform,
                 int16_t* packed) {
#ifdef AXONNX_X86
  if (kAvx2) return PackAvx2(index, ld, rows, cols, transform, packed);
#endif
  PackPortable(index, ld, rows, cols, transform, packed);
}

void GemmS16(const int16_t* weights, int nrows, const int32_t* row_of, int kp,
             const int16_t* packed, int cols, int32_t* acc, size_t ld_acc) {
#ifdef AXONNX_X86
  if (kAvx2) return GemmAvx2(weights, nrows, row_of, kp, packed, cols, acc, ld_acc);
#endif
  GemmPortable(weights, nrows, row_of, kp, packed, cols, acc, ld_acc);
}

void FinishLutTaps(LutTaps& taps, const std::vector<int64_t>& count, int64_t K) {
  const size_t M = count.size();
  taps.slices = std::max<int64_t>(1, CeilDiv(K, kLutSlice));
  const size_t stride = static_cast<size_t>(taps.slices) + 1;
  taps.start.assign(M + 1, 0);
  taps.slice.assign(M * stride, 0);
  taps.split.assign(M * static_cast<size_t>(taps.slices) * 2, 0);
  taps.kind.assign(M, 0);
  taps.at.assign(taps.k.size(), 0);
  std::vector<std::pair<int32_t, int32_t>> group;
  for (size_t m = 0; m < M; ++m) {
    const int64_t b = taps.start[m], e = b + count[m];
    taps.start[m + 1] = e;
    int64_t i = b;
    for (int64_t s = 0; s <= taps.slices; ++s) {
      while (i < e && taps.k[static_cast<size_t>(i)] < kLutSlice * s) ++i;
      taps.slice[m * stride + static_cast<size_t>(s)] = s == taps.slices ? e : i;
    }
    uint8_t fits = 3;
    for (int64_t t = b; t < e; ++t) fits &= taps.tables.fits[taps.row[static_cast<size_t>(t)]];
    const int kind = !Cpu().vbmi ? 0 : (fits & 2) ? 2 : (fits & 1) ? 1 : 0;
    taps.kind[m] = static_cast<int8_t>(kind);
    for (int64_t s = 0; s < taps.slices; ++s) {
      const int64_t s0 = taps.slice[m * stride + static_cast<size_t>(s)], s1 = taps.slice[m * stride + static_cast<size_t>(s) + 1];
      int64_t* split = taps.split.data() + (m * static_cast<size_t>(taps.slices) + static_cast<size_t>(s)) * 2;
      split[0] = split[1] = s0;
      for (int64_t t = s0; t < s1; ++t) {
        const size_t r = static_cast<size_t>(taps.row[static_cast<size_t>(t)]);
        taps.at[static_cast<size_t>(t)] = kind == 2 ? taps.tables.at8[r] : static_cast<int32_t>(r * 2 * kTableSize / 64);
      }
      if (kind != 2) continue;
      // Grouped by lines (a stable sort keeps each group's k ascending): each group runs its own
      // loop, without a branch per tap.
      group.clear();
      for (int64_t t = s0; t < s1; ++t) group.emplace_back(taps.k[static_cast<size_t>(t)], taps.row[static_cast<size_t>(t)]);
      std::stable_sort(group.begin(), group.end(), [&](const auto& x, const auto& y) {
        return taps.tables.lines8[x.second] < taps.tables.lines8[y.second];
      });
      for (int64_t t = s0; t < s1; ++t) {
        const auto [k, r] = group[static_cast<size_t>(t - s0)];
        taps.k[static_cast<size_t>(t)] = k;
        taps.row[static_cast<size_t>(t)] = r;
        taps.at[static_cast<size_t>(t)] = taps.tables.at8[r];
        const int lines = taps.tables.lines8[r];
        if (lines <= 1) split[0] = t + 1;
        if (lines <= 2) split[1] = t + 1;
      }
    }
  }
}

void LutErrorAdd(const LutTaps& taps, int64_t m0, int64_t m1, const uint8_t* index, const int64_t* off,
                 int cols, int32_t* acc, size_t ld_acc) {
  const size_t stride = static_cast<size_t>(taps.slices) + 1;
  // Slice by slice over the channels: a slice's activation rows are read by every channel.
  for (int64_t s = 0; s < taps.slices; ++s) {
    for (int64_t m = m0; m < m1; ++m) {
      const int64_t* sl = taps.slice.data() + static_cast<size_t>(m) * stride + s;
      const size_t n = static_cast<size_t>(sl[1] - sl[0]);
      if (n == 0) continue;
      const int32_t* ks = taps.k.data() + sl[0];
      const int32_t* rows = taps.row.data() + sl[0];
      int32_t* a = acc + static_cast<size_t>(m - m0) * ld_acc;
#ifdef AXONNX_X86
      if (m + 1 < m1) {
        // The next channel's taps of this slice lie a channel's taps further on, often in memory
        // only (M * K taps: 19 MB for 512 x 512 x 3 x 3); start loading them while this one runs.
        const int64_t* next = sl + stride;
        for (int64_t t = next[0]; t < next[1]; t += 16) {
          _mm_prefetch(reinterpret_cast<const char*>(taps.k.data() + t), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(taps.at.data() + t), _MM_HINT_T0);
        }
      }
      const int kind = taps.kind[static_cast<size_t>(m)];
      if (kind != 0) {
        const int64_t* split = taps.split.data() + (static_cast<size_t>(m) * static_cast<size_t>(taps.slices) + static_cast<size_t>(s)) * 2;
        const size_t ends[3] = {static_cast<size_t>(split[0] - sl[0]), static_cast<size_t>(split[1] - sl[0]), n};
        const int32_t* at = taps.at.data() + sl[0];
        if (kind == 2) {
          ErrorPlanesAvx512<1>(taps.tables.planes8, ks, at, ends, index, off, cols, a);
        } else {
          ErrorPlanesAvx512<2>(taps.tables.planes16, ks, at, ends, index, off, cols, a);
        }
        continue;
      }
      if (kAvx2) {
        ErrorRowsAvx2(taps.tables.rows32, ks, rows, n, index, off, cols, a);
        continue;
      }
#endif
      ErrorRowsPortable(taps.tables.rows32, ks, rows, n, index, off, cols, a);
    }
  }
}

}  // namespace axonnx::roupconv
