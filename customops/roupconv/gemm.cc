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

// The 64 bytes t[u] of a 256-byte table t held in four registers (two vpermi2b and a blend on
// bit 7 of u).
AXONNX_VBMI inline __m512i LookupBytes(__m512i t0, __m512i t1, __m512i t2, __m512i t3, __m512i u,
                                       __mmask64 top) {
  return _mm512_mask_blend_epi8(top, _mm512_permutex2var_epi8(t0, u, t1), _mm512_permutex2var_epi8(t2, u, t3));
}

// Error rows that fit int8 (int16), as one byte plane (two) held in four (eight) registers, looked
// up for kParts x 64 columns per tap, for kChannels output channels with the same taps' k (the
// activation bytes and their top-bit mask shared). A plane's looked-up bytes are summed as uint16
// words (word w: byte 2w + 256 byte 2w + 1) beside the sum of their odd bytes alone; for up to 256
// taps (kLutSlice) each column's byte sum fits uint16, so even = words - 256 odd (mod 2^16) is
// exact. acc += the bytes' sums - 128 taps (one plane: the row + 128), or low + 256 (high - 128 taps).
// The small loops are unrolled by force: otherwise GCC keeps the sums and table rows in memory.
template <int kPlanes, int kParts, int kChannels>
AXONNX_VBMI void ErrorPlanesPart(const uint8_t* planes, const int32_t* ks, const int32_t* const* rows,
                                 size_t ntaps, const uint8_t* index, const int64_t* off, const __mmask64* mask,
                                 int c0, int32_t* const* acc) {
  const __m512i zero = _mm512_setzero_si512();
  __m512i words[kChannels][kParts][kPlanes], odd[kChannels][kParts][kPlanes];
  #pragma GCC unroll 8
  for (int h = 0; h < kChannels; ++h) {
    #pragma GCC unroll 8
    for (int b = 0; b < kParts; ++b) {
      #pragma GCC unroll 8
      for (int j = 0; j < kPlanes; ++j) words[h][b][j] = odd[h][b][j] = zero;
    }
  }
  for (size_t i = 0; i < ntaps; ++i) {
    if (kParts == 1 && i + 8 < ntaps) {
      // One lookup per row load: start the table rows a few taps ahead (they often miss L1).
      #pragma GCC unroll 8
      for (int h = 0; h < kChannels; ++h) {
        const char* p = reinterpret_cast<const char*>(planes) + static_cast<size_t>(rows[h][i + 8]) * (kPlanes * kTableSize);
        #pragma GCC unroll 8
        for (int q = 0; q < 4 * kPlanes; ++q) _mm_prefetch(p + 64 * q, _MM_HINT_T0);
      }
    }
    __m512i t[kChannels][kPlanes][4];
    #pragma GCC unroll 8
    for (int h = 0; h < kChannels; ++h) {
      const uint8_t* p = planes + static_cast<size_t>(rows[h][i]) * (kPlanes * kTableSize);
      #pragma GCC unroll 8
      for (int j = 0; j < kPlanes; ++j) {
        #pragma GCC unroll 8
        for (int q = 0; q < 4; ++q) t[h][j][q] = _mm512_load_si512(p + j * kTableSize + 64 * q);
      }
    }
    const uint8_t* src = index + off[ks[i]] + c0;
    #pragma GCC unroll 8
    for (int b = 0; b < kParts; ++b) {
      const __m512i u = _mm512_maskz_loadu_epi8(mask[b], src + 64 * b);
      const __mmask64 top = _mm512_movepi8_mask(u);
      #pragma GCC unroll 8
      for (int h = 0; h < kChannels; ++h) {
        #pragma GCC unroll 8
        for (int j = 0; j < kPlanes; ++j) {
          const __m512i v = LookupBytes(t[h][j][0], t[h][j][1], t[h][j][2], t[h][j][3], u, top);
          words[h][b][j] = _mm512_add_epi16(words[h][b][j], v);
          odd[h][b][j] = _mm512_add_epi16(odd[h][b][j], _mm512_srli_epi16(v, 8));
        }
      }
    }
  }
  // Back to column order: per 128-bit lane, unpacklo/hi of (even, odd) sums hold its columns 0-7
  // and 8-15; the 64-bit permutes put the lanes in order.
  const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);    // columns 0..31 of a part
  const __m512i second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);  // columns 32..63
  const __m512i bias = _mm512_set1_epi32(static_cast<int32_t>(128 * ntaps));
  #pragma GCC unroll 8
  for (int h = 0; h < kChannels; ++h) {
    #pragma GCC unroll 8
    for (int b = 0; b < kParts; ++b) {
      __m512i sums[kPlanes][2];
      #pragma GCC unroll 8
      for (int j = 0; j < kPlanes; ++j) {
        const __m512i w = words[h][b][j], o = odd[h][b][j];
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
        int32_t* o = acc[h] + c0 + 64 * b + 16 * q;
        _mm512_mask_storeu_epi32(o, lanes, _mm512_add_epi32(_mm512_maskz_loadu_epi32(lanes, o), add));
      }
    }
  }
}

// planes: 64-byte aligned rows.
template <int kPlanes, int kChannels>
AXONNX_VBMI void ErrorPlanesAvx512(const uint8_t* planes, const int32_t* ks, const int32_t* const* rows,
                                   size_t ntaps, const uint8_t* index, const int64_t* off, int cols,
                                   int32_t* const* acc) {
  constexpr int kParts = kPlanes * kChannels == 1 ? 4 : 2;  // sums and table rows within the 32 registers
  for (int c0 = 0; c0 < cols; c0 += 64 * kParts) {
    __mmask64 mask[kParts];
    int parts = 0;
    for (int b = 0; b < kParts; ++b) {
      const int n = std::clamp(cols - c0 - 64 * b, 0, 64);
      mask[b] = n == 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
      if (n > 0) parts = b + 1;
    }
    switch (parts) {  // no lookups for the parts past the last column
      case 4: ErrorPlanesPart<kPlanes, kParts, kChannels>(planes, ks, rows, ntaps, index, off, mask, c0, acc); break;
      case 3: ErrorPlanesPart<kPlanes, kParts < 3 ? kParts : 3, kChannels>(planes, ks, rows, ntaps, index, off, mask, c0, acc); break;
      case 2: ErrorPlanesPart<kPlanes, 2, kChannels>(planes, ks, rows, ntaps, index, off, mask, c0, acc); break;
      default: ErrorPlanesPart<kPlanes, 1, kChannels>(planes, ks, rows, ntaps, index, off, mask, c0, acc); break;
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
  taps.kind.assign(M, 0);
  taps.same_k.assign(M, 0);
  for (size_t m = 0; m < M; ++m) {
    const int64_t b = taps.start[m], e = b + count[m];
    taps.start[m + 1] = e;
    int64_t i = b;
    for (int64_t s = 0; s <= taps.slices; ++s) {
      while (i < e && taps.k[static_cast<size_t>(i)] < kLutSlice * s) ++i;
      taps.slice[m * stride + static_cast<size_t>(s)] = s == taps.slices ? e : i;
    }
    taps.same_k[m] = m > 0 && count[m] == count[m - 1] &&
                     std::equal(taps.k.begin() + b, taps.k.begin() + e, taps.k.begin() + taps.start[m - 1]);
    uint8_t fits = 3;
    for (int64_t t = b; t < e; ++t) fits &= taps.tables.fits[taps.row[static_cast<size_t>(t)]];
    taps.kind[m] = !Cpu().vbmi ? 0 : (fits & 2) ? 2 : (fits & 1) ? 1 : 0;
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
      const int32_t* rows[2] = {taps.row.data() + sl[0], nullptr};
      int32_t* a[2] = {acc + static_cast<size_t>(m - m0) * ld_acc, nullptr};
#ifdef AXONNX_X86
      const int kind = taps.kind[static_cast<size_t>(m)];
      if (kind == 2 && m + 1 < m1 && taps.same_k[static_cast<size_t>(m) + 1] && taps.kind[static_cast<size_t>(m) + 1] == 2) {
        // Two channels with the same taps' k: one activation load for both.
        rows[1] = taps.row.data() + sl[stride];
        a[1] = a[0] + ld_acc;
        ErrorPlanesAvx512<1, 2>(taps.tables.planes8, ks, rows, n, index, off, cols, a);
        ++m;
        continue;
      }
      if (kind == 2) {
        ErrorPlanesAvx512<1, 1>(taps.tables.planes8, ks, rows, n, index, off, cols, a);
        continue;
      }
      if (kind == 1) {
        ErrorPlanesAvx512<2, 1>(taps.tables.planes16, ks, rows, n, index, off, cols, a);
        continue;
      }
      if (kAvx2) {
        ErrorRowsAvx2(taps.tables.rows32, ks, rows[0], n, index, off, cols, a[0]);
        continue;
      }
#endif
      ErrorRowsPortable(taps.tables.rows32, ks, rows[0], n, index, off, cols, a[0]);
    }
  }
}

}  // namespace axonnx::roupconv
