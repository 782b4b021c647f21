#include "roupconv/gemm_u8.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "common/kernel_info.h"
#include "roupconv/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#define AXONNX_X86 1
#include <immintrin.h>
// AMX intrinsics: GCC 11 and clang 12 onwards.
#if (defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11)
#define AXONNX_AMX 1
#endif
#endif

namespace axonnx::roupconv {
namespace {


enum class Kernel { kPortable, kAvx2, kVnni512 };
// AMX (tdpbsud) takes the blocks of 16 rows when the k-quads come in groups of 16 at one stride.

Kernel Choose() {
  const CpuFeatures& cpu = Cpu();
  if (cpu.vnni512) return Kernel::kVnni512;
  if (cpu.avx2) return Kernel::kAvx2;
  return Kernel::kPortable;
}

const Kernel kKernel = Choose();

inline int32_t LoadQuad(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Adds (sum << shift) to out modulo 2^32, as the SIMD loops do.
inline int32_t AddShifted(int32_t out, int32_t sum, int shift) {
  return static_cast<int32_t>(static_cast<uint32_t>(out) + (static_cast<uint32_t>(sum) << shift));
}

// ---- portable versions ----------------------------------------------------------------------

void GemmPortable(const int8_t* weights, int nrows, const int32_t* row_of, const int32_t* shift,
                  const int32_t* init, int kq, const uint8_t* packed, const int32_t* quad_off,
                  size_t tile_stride, int cols, int32_t* acc, size_t ld_acc) {
  const int kquads = kq / kQuad;
  for (int t = 0; t < cols / kTile; ++t) {
    const uint8_t* tile = packed + static_cast<size_t>(t) * tile_stride;
    for (int i = 0; i < nrows; ++i) {
      const int8_t* w = weights + static_cast<size_t>(i) * kq;
      int32_t sum[kTile] = {};
      for (int q = 0; q < kquads; ++q) {
        const uint8_t* b = tile + quad_off[q];
        for (int c = 0; c < kTile; ++c) {
          for (int e = 0; e < kQuad; ++e) sum[c] += b[kQuad * c + e] * w[kQuad * q + e];
        }
      }
      int32_t* out = acc + static_cast<size_t>(row_of[i]) * ld_acc + t * kTile;
      for (int c = 0; c < kTile; ++c) out[c] = AddShifted(init ? init[i] : out[c], sum[c], shift[i]);
    }
  }
}

#ifdef AXONNX_X86
// ---- AVX2 versions --------------------------------------------------------------------------

// MR rows x 16 columns. vpmaddubsw's int16 pair sums are exact for the rows the plan gives it
// (MaxPairSum); vpmaddwd by 1 widens them to int32.
template <int MR>
__attribute__((target("avx2"))) void TileAvx2(const int8_t* w, int kq, const uint8_t* b,
                                              const int32_t* quad_off, int kquads, int32_t* const* out,
                                              const int32_t* shift, const int32_t* init) {
  __m256i lo[MR], hi[MR];
  for (int i = 0; i < MR; ++i) lo[i] = hi[i] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int q = 0; q < kquads; ++q) {
    const uint8_t* bq = b + quad_off[q];
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bq));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bq + 32));
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256i wv = _mm256_set1_epi32(LoadQuad(w + static_cast<size_t>(i) * kq + kQuad * q));
      lo[i] = _mm256_add_epi32(lo[i], _mm256_madd_epi16(_mm256_maddubs_epi16(b0, wv), ones));
      hi[i] = _mm256_add_epi32(hi[i], _mm256_madd_epi16(_mm256_maddubs_epi16(b1, wv), ones));
    }
  }
  for (int i = 0; i < MR; ++i) {
    const __m128i count = _mm_cvtsi32_si128(shift[i]);
    __m256i* o = reinterpret_cast<__m256i*>(out[i]);
    const __m256i o0 = init ? _mm256_set1_epi32(init[i]) : _mm256_loadu_si256(o);
    const __m256i o1 = init ? o0 : _mm256_loadu_si256(o + 1);
    _mm256_storeu_si256(o, _mm256_add_epi32(o0, _mm256_sll_epi32(lo[i], count)));
    _mm256_storeu_si256(o + 1, _mm256_add_epi32(o1, _mm256_sll_epi32(hi[i], count)));
  }
}

void GemmAvx2(const int8_t* weights, int nrows, const int32_t* row_of, const int32_t* shift,
              const int32_t* init, int kq, const uint8_t* packed, const int32_t* quad_off,
              size_t tile_stride, int cols, int32_t* acc, size_t ld_acc) {
  using Fn = void (*)(const int8_t*, int, const uint8_t*, const int32_t*, int, int32_t* const*,
                      const int32_t*, const int32_t*);
  static constexpr Fn kTiles[] = {TileAvx2<1>, TileAvx2<2>, TileAvx2<3>, TileAvx2<4>};
  constexpr int kRows = 4;  // 8 accumulators + 2 columns + broadcast + ones: within 16 ymm
  const int kquads = kq / kQuad;
  for (int t = 0; t < cols / kTile; ++t) {
    const uint8_t* tile = packed + static_cast<size_t>(t) * tile_stride;
    for (int i = 0; i < nrows; i += kRows) {
      const int mr = std::min(kRows, nrows - i);
      int32_t* out[kRows];
      for (int r = 0; r < mr; ++r) out[r] = acc + static_cast<size_t>(row_of[i + r]) * ld_acc + t * kTile;
      kTiles[mr - 1](weights + static_cast<size_t>(i) * kq, kq, tile, quad_off, kquads, out, shift + i,
                     init ? init + i : nullptr);
    }
  }
}

// ---- AVX-512 versions -----------------------------------------------------------------------

// U through a 256-entry table held in four registers: two vpermi2b and a blend on bit 7.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi"))) void ApplyTableAvx512(
    const U8Operand& op, const uint8_t* in, size_t n, uint8_t* out) {
  const __m512i t0 = _mm512_loadu_si512(op.table.data()), t1 = _mm512_loadu_si512(op.table.data() + 64);
  const __m512i t2 = _mm512_loadu_si512(op.table.data() + 128), t3 = _mm512_loadu_si512(op.table.data() + 192);
  for (size_t i = 0; i < n; i += 64) {
    const __mmask64 mask = n - i >= 64 ? ~__mmask64{0} : (__mmask64{1} << (n - i)) - 1;
    const __m512i u = _mm512_maskz_loadu_epi8(mask, in + i);
    const __m512i lo = _mm512_permutex2var_epi8(t0, u, t1);
    const __m512i hi = _mm512_permutex2var_epi8(t2, u, t3);
    _mm512_mask_storeu_epi8(out + i, mask, _mm512_mask_blend_epi8(_mm512_movepi8_mask(u), lo, hi));
  }
}

// acc += vpdpbusd(b, w), in place: with the intrinsic, GCC 12 copies every accumulator to another
// register on each iteration (and spills one).
__attribute__((target("avx512f,avx512vnni"), always_inline)) inline void Dpbusd(__m512i& acc, __m512i b,
                                                                                 __m512i w) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(b), "v"(w));
}

// MR rows x NT tiles, one zmm accumulator each (32 registers: 16 accumulators at most).
template <int MR, int NT>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void TileVnni512(
    const int8_t* w, int kq, const uint8_t* b, const int32_t* quad_off, size_t tile_stride, int kquads,
    int32_t* const* out, const int32_t* shift, const int32_t* init) {
  __m512i acc[MR][NT];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 2
    for (int n = 0; n < NT; ++n) acc[i][n] = _mm512_setzero_si512();
  }
  for (int q = 0; q < kquads; ++q) {
    const uint8_t* bq = b + quad_off[q];
    __m512i bv[NT];
#pragma GCC unroll 2
    for (int n = 0; n < NT; ++n) bv[n] = _mm512_loadu_si512(bq + n * tile_stride);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512i wv = _mm512_set1_epi32(LoadQuad(w + static_cast<size_t>(i) * kq + kQuad * q));
#pragma GCC unroll 2
      for (int n = 0; n < NT; ++n) Dpbusd(acc[i][n], bv[n], wv);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    const __m128i count = _mm_cvtsi32_si128(shift[i]);
#pragma GCC unroll 2
    for (int n = 0; n < NT; ++n) {
      int32_t* o = out[i] + n * kTile;
      const __m512i old = init ? _mm512_set1_epi32(init[i]) : _mm512_loadu_si512(o);
      _mm512_storeu_si512(o, _mm512_add_epi32(old, _mm512_sll_epi32(acc[i][n], count)));
    }
  }
}

// kq: the weight rows' stride; kquads: the k-quads to add (the first kquads of each row).
void GemmVnni512(const int8_t* weights, int nrows, const int32_t* row_of, const int32_t* shift,
                 const int32_t* init, int kq, int kquads, const uint8_t* packed, const int32_t* quad_off,
                 size_t tile_stride, int cols, int32_t* acc, size_t ld_acc) {
  using Fn = void (*)(const int8_t*, int, const uint8_t*, const int32_t*, size_t, int, int32_t* const*,
                      const int32_t*, const int32_t*);
  static constexpr Fn kTiles[2][8] = {
      {TileVnni512<1, 1>, TileVnni512<2, 1>, TileVnni512<3, 1>, TileVnni512<4, 1>,
       TileVnni512<5, 1>, TileVnni512<6, 1>, TileVnni512<7, 1>, TileVnni512<8, 1>},
      {TileVnni512<1, 2>, TileVnni512<2, 2>, TileVnni512<3, 2>, TileVnni512<4, 2>,
       TileVnni512<5, 2>, TileVnni512<6, 2>, TileVnni512<7, 2>, TileVnni512<8, 2>}};
  constexpr int kRows = 8;
  const int tiles = cols / kTile;
  // Two tiles (32 columns) share each weight broadcast; their packed columns stay in L1 while
  // the row blocks pass over them.
  for (int t = 0; t < tiles; t += 2) {
    const int nt = std::min(2, tiles - t);
    const uint8_t* b = packed + static_cast<size_t>(t) * tile_stride;
    for (int i = 0; i < nrows; i += kRows) {
      const int mr = std::min(kRows, nrows - i);
      int32_t* out[kRows];
      for (int r = 0; r < mr; ++r) out[r] = acc + static_cast<size_t>(row_of[i + r]) * ld_acc + t * kTile;
      kTiles[nt - 1][mr - 1](weights + static_cast<size_t>(i) * kq, kq, b, quad_off, tile_stride, kquads,
                             out, shift + i, init ? init + i : nullptr);
    }
  }
}

#ifdef AXONNX_AMX
// ---- AMX versions ---------------------------------------------------------------------------

// Tiles: 0-3 accumulators (2 row blocks x 2 column tiles), 4-5 weights (16 rows x 16 k-quads,
// s8), 6-7 activations (16 k-quads x 16 columns x 4 bytes, u8: the layout of one k-quad of a
// tile): tdpbsud(C, A, B) adds sum_k A[m][k] B[k / 4][4 n + k % 4] = the rows' dot products.
// Tile registers are per thread: every call loads the configuration and releases it.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Adds (or stores, with init) the 16 x 16 sums of a stored accumulator tile, shifted, to acc.
__attribute__((target("avx512f"))) inline void EpilogueAmx(const int32_t* tile, int32_t* const* out, int col,
                                                           const int32_t* shift, const int32_t* init) {
  for (int r = 0; r < 16; ++r) {
    const __m512i s = _mm512_sll_epi32(_mm512_load_si512(tile + 16 * r), _mm_cvtsi32_si128(shift[r]));
    int32_t* o = out[r] + col;
    const __m512i old = init ? _mm512_set1_epi32(init[r]) : _mm512_loadu_si512(o);
    _mm512_storeu_si512(o, _mm512_add_epi32(old, s));
  }
}

// Rows [0, nrows) with nrows a multiple of 16; k-step s reads k-quads 16s..16s+15 of column tile
// t at b + step_off[s] + t * tile_stride + r * step_stride[s] (row r of the activation tile).
__attribute__((target("amx-tile,amx-int8,avx512f"))) void GemmAmx(
    const int8_t* weights, int nrows, const int32_t* row_of, const int32_t* shift, const int32_t* init, int kq,
    const uint8_t* b, const int32_t* step_off, const int32_t* step_stride, int steps, size_t tile_stride,
    int cols, int32_t* acc, size_t ld_acc) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
  alignas(64) int32_t c[4][16 * 16];
  const int tiles = cols / kTile;
  for (int t = 0; t < tiles; t += 2) {
    const bool two = t + 1 < tiles;
    const uint8_t* bt = b + static_cast<size_t>(t) * tile_stride;
    for (int i = 0; i < nrows; i += 32) {
      const bool rows2 = i + 16 < nrows;
      const int8_t* w0 = weights + static_cast<size_t>(i) * kq;
      const int8_t* w1 = w0 + static_cast<size_t>(16) * kq;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int s = 0; s < steps; ++s) {
        const uint8_t* bs = bt + step_off[s];
        _tile_loadd(6, bs, step_stride[s]);
        _tile_loadd(4, w0 + 64 * s, kq);
        _tile_dpbsud(0, 4, 6);
        if (two) {
          _tile_loadd(7, bs + tile_stride, step_stride[s]);
          _tile_dpbsud(1, 4, 7);
        }
        if (rows2) {
          _tile_loadd(5, w1 + 64 * s, kq);
          _tile_dpbsud(2, 5, 6);
          if (two) _tile_dpbsud(3, 5, 7);
        }
      }
      _tile_stored(0, c[0], 64);
      if (two) _tile_stored(1, c[1], 64);
      if (rows2) {
        _tile_stored(2, c[2], 64);
        if (two) _tile_stored(3, c[3], 64);
      }
      for (int h = 0; h < (rows2 ? 2 : 1); ++h) {
        int32_t* out[16];
        const int r0 = i + 16 * h;
        for (int r = 0; r < 16; ++r) out[r] = acc + static_cast<size_t>(row_of[r0 + r]) * ld_acc;
        const int32_t* in = init ? init + r0 : nullptr;
        EpilogueAmx(c[2 * h], out, t * kTile, shift + r0, in);
        if (two) EpilogueAmx(c[2 * h + 1], out, (t + 1) * kTile, shift + r0, in);
      }
    }
  }
  _tile_release();
}
#endif  // AXONNX_AMX
#endif  // AXONNX_X86

}  // namespace

int U8LogScale(const XTransform& transform) {
  return transform.kind == XTransform::Kind::kRound ? transform.param : transform.shift;
}

int U8Bound(const XTransform& transform) {
  if (transform.kind == XTransform::Kind::kDigit) return 4;  // Booth digit + 2
  // floor((a + 2^(r-1)) / 2^r) takes at most 256 / 2^r + 1 values on 256 consecutive a.
  return transform.param == 0 ? 255 : (255 >> transform.param) + 1;
}

U8Operand MakeU8Operand(const XTransform& transform) {
  U8Operand op;
  op.log_scale = U8LogScale(transform);
  int value[256];
  int low = INT_MAX;
  for (int u = 0; u < 256; ++u) {
    const int full = transform.Apply(u);
    if (full & ((1 << op.log_scale) - 1)) throw OpError("internal: a GEMM operand is not a multiple of its scale");
    value[u] = full >> op.log_scale;  // exact: a multiple of 2^log_scale
    low = std::min(low, value[u]);
  }
  op.offset = low;
  op.identity = true;
  const int bound = U8Bound(transform);
  for (int u = 0; u < 256; ++u) {
    const int v = value[u] - low;
    if (v > bound) throw OpError("internal: a u8 GEMM operand exceeds its bound");
    op.table[static_cast<size_t>(u)] = static_cast<uint8_t>(v);
    op.identity = op.identity && v == u;
  }
  return op;
}

int MaxPairSum(int bound) {
  return kKernel == Kernel::kAvx2 ? INT16_MAX / std::max(bound, 1) : INT_MAX;
}

void ApplyTable(const U8Operand& op, const uint8_t* in, size_t n, uint8_t* out) {
#ifdef AXONNX_X86
  if (Cpu().vbmi) return ApplyTableAvx512(op, in, n, out);
#endif
  for (size_t i = 0; i < n; ++i) out[i] = op.table[in[i]];
}

void GemmU8S8(const int8_t* weights, int nrows, const int32_t* row_of, const int32_t* shift,
              const int32_t* init, int kq, const uint8_t* b, const int32_t* quad_off,
              size_t tile_stride, int cols, int32_t* acc, size_t ld_acc) {
#ifdef AXONNX_X86
  const int kquads = kq / kQuad;
#ifdef AXONNX_AMX
  if (kKernel == Kernel::kVnni512 && Cpu().amx && nrows >= 16) {
    // AMX for whole blocks of 16 rows over the leading groups of 16 k-quads that lie at one
    // stride (the plan puts them first); VNNI adds the other quads, and takes the other rows.
    int32_t step_off[256], step_stride[256];
    int steps = 0;
    for (; steps < std::min(kquads / 16, 256); ++steps) {
      const int32_t* q = quad_off + 16 * steps;
      const int32_t stride = q[1] - q[0];
      bool regular = stride > 0;
      for (int r = 2; r < 16 && regular; ++r) regular = q[r] - q[r - 1] == stride;
      if (!regular) break;
      step_off[steps] = q[0];
      step_stride[steps] = stride;
    }
    // Worth it when the tiles take 3/4 of the k-quads or more: the VNNI pass over the rest adds
    // to every accumulator again (measured: 1x1 with 96 channels, 2/3 on AMX, was slower).
    if (steps > 0 && 4 * 16 * steps >= 3 * kquads) {
      const int n16 = nrows / 16 * 16;
      GemmAmx(weights, n16, row_of, shift, init, kq, b, step_off, step_stride, steps, tile_stride, cols, acc, ld_acc);
      if (16 * steps < kquads) {
        GemmVnni512(weights + 64 * steps, n16, row_of, shift, nullptr, kq, kquads - 16 * steps, b,
                    quad_off + 16 * steps, tile_stride, cols, acc, ld_acc);
      }
      if (n16 == nrows) return;
      return GemmVnni512(weights + static_cast<size_t>(n16) * kq, nrows - n16, row_of + n16, shift + n16,
                         init ? init + n16 : nullptr, kq, kquads, b, quad_off, tile_stride, cols, acc, ld_acc);
    }
  }
#endif  // AXONNX_AMX
  if (kKernel == Kernel::kVnni512) {
    return GemmVnni512(weights, nrows, row_of, shift, init, kq, kquads, b, quad_off, tile_stride, cols, acc, ld_acc);
  }
  if (kKernel == Kernel::kAvx2) {
    return GemmAvx2(weights, nrows, row_of, shift, init, kq, b, quad_off, tile_stride, cols, acc, ld_acc);
  }
#endif
  GemmPortable(weights, nrows, row_of, shift, init, kq, b, quad_off, tile_stride, cols, acc, ld_acc);
}

}  // namespace axonnx::roupconv
