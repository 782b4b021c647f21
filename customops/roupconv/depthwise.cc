#include "roupconv/depthwise.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "roupconv/cpu.h"
#include "roupconv/util.h"

#if defined(__x86_64__) || defined(__i386__)
#define AXONNX_X86 1
#include <immintrin.h>
#endif

namespace axonnx::roupconv {
namespace {

// The planes' layout, one plane per stride phase (rph, cph) < (SH, SW): row rp < rows, column
// cp < wv of phase ph = rph * SW + cph holds input row rp * SH + rph - pad_top, column
// cp * SW + cph - pad_left (the zero point's index outside the input). Tap (i, j) of output
// pixel (oh, ow) reads row oh + (i * DH) / SH, column ow + (j * DW) / SW of phase
// ((i * DH) % SH, (j * DW) % SW). Along virtual output rows of wv pixels (the last wv - out_w
// of each discarded), every tap is then one contiguous run: p = oh * wv + ow reads element
// p + offset(tap) of its phase. The last row of each phase is slack for the last tap's run.
struct Layout {
  int64_t rows, wv, phase, plane;
};

Layout MakeLayout(const DepthwiseGeometry& g) {
  Layout l;
  l.rows = g.out_h + ((g.KH - 1) * g.DH) / g.SH + 1;
  l.wv = g.out_w + ((g.KW - 1) * g.DW) / g.SW;
  l.phase = l.rows * l.wv;
  l.plane = g.SH * g.SW * l.phase;
  return l;
}

// Fills `out` (the layout above) with the activation index of every position, pad outside the
// input. `row` is scratch.
__attribute__((always_inline)) inline void FillPlane(const DepthwiseGeometry& g, const Layout& l,
                                                     const uint8_t* xc, uint8_t flip, uint8_t pad,
                                                     std::vector<uint8_t>& row, uint8_t* __restrict out) {
  const int64_t W = g.W, SW = g.SW, SH = g.SH;
  if (SW == 2) {
    // Both column phases of a row in one pass: the row, padded, deinterleaved (16-bit loads).
    row.assign(static_cast<size_t>(std::max(2 * l.wv + 2, g.pad_left + W)), pad);
    for (int64_t rph = 0; rph < SH; ++rph) {
      uint8_t* even = out + (rph * SW) * l.phase;
      uint8_t* odd = even + l.phase;
      for (int64_t rp = 0; rp < l.rows; ++rp) {
        uint8_t* __restrict d0 = even + rp * l.wv;
        uint8_t* __restrict d1 = odd + rp * l.wv;
        const int64_t ih = rp * SH + rph - g.pad_top;
        if (ih < 0 || ih >= g.H) {
          std::memset(d0, pad, static_cast<size_t>(l.wv));
          std::memset(d1, pad, static_cast<size_t>(l.wv));
          continue;
        }
        const uint8_t* __restrict src = xc + ih * W;
        uint8_t* __restrict r = row.data() + g.pad_left;
        for (int64_t i = 0; i < W; ++i) r[i] = static_cast<uint8_t>(src[i] ^ flip);
        const uint8_t* __restrict padded = row.data();
        for (int64_t cp = 0; cp < l.wv; ++cp) {
          uint16_t w;
          std::memcpy(&w, padded + 2 * cp, sizeof w);
          d0[cp] = static_cast<uint8_t>(w);
          d1[cp] = static_cast<uint8_t>(w >> 8);
        }
      }
    }
    return;
  }
  for (int64_t rph = 0; rph < SH; ++rph) {
    for (int64_t cph = 0; cph < SW; ++cph) {
      // columns cp with 0 <= cp * SW + cph - pad_left < W
      const int64_t cp0 = std::min(l.wv, std::max<int64_t>(0, (g.pad_left - cph + SW - 1) / SW));
      int64_t cp1 = cp0;
      while (cp1 < l.wv && cp1 * SW + cph - g.pad_left < W) ++cp1;
      uint8_t* phase = out + (rph * SW + cph) * l.phase;
      for (int64_t rp = 0; rp < l.rows; ++rp) {
        uint8_t* __restrict dst = phase + rp * l.wv;
        const int64_t ih = rp * SH + rph - g.pad_top;
        if (ih < 0 || ih >= g.H) {
          std::memset(dst, pad, static_cast<size_t>(l.wv));
          continue;
        }
        std::memset(dst, pad, static_cast<size_t>(cp0));
        const uint8_t* __restrict src = xc + ih * W + cph - g.pad_left;
        if (SW == 1) {
          for (int64_t cp = cp0; cp < cp1; ++cp) dst[cp] = static_cast<uint8_t>(src[cp] ^ flip);
        } else {
          for (int64_t cp = cp0; cp < cp1; ++cp) dst[cp] = static_cast<uint8_t>(src[cp * SW] ^ flip);
        }
        std::memset(dst + cp1, pad, static_cast<size_t>(l.wv - cp1));
      }
    }
  }
}

using Tap = DepthwiseTap;
using Pair = DepthwisePair;

constexpr int64_t kSlack = 64;  // int16 elements past the planes that the pair loop may read

#ifdef AXONNX_X86
// acc[p] = base + sum over pairs of w0 * planes[off + p] + w1 * planes[off + p + 1], for p < n
// rounded up to 32: vpmaddwd on the 32 elements from off + p0 gives the even outputs p0 + 2k,
// on those from off + p0 + 1 the odd ones; the two are interleaved once per 32 outputs.
__attribute__((target("avx512f,avx512bw"))) void ConvPairsAvx512(const int16_t* planes, const Pair* pairs,
                                                                 size_t npairs, int64_t n, int32_t base,
                                                                 int32_t* acc) {
  const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  for (int64_t p0 = 0; p0 < n; p0 += 32) {
    __m512i even = _mm512_set1_epi32(base), odd = even;
    for (size_t k = 0; k < npairs; ++k) {
      const int16_t* src = planes + pairs[k].off + p0;
      const __m512i w = _mm512_set1_epi32(pairs[k].w);
      even = _mm512_add_epi32(even, _mm512_madd_epi16(_mm512_loadu_si512(src), w));
      odd = _mm512_add_epi32(odd, _mm512_madd_epi16(_mm512_loadu_si512(src + 1), w));
    }
    _mm512_storeu_si512(acc + p0, _mm512_permutex2var_epi32(even, lo, odd));
    _mm512_storeu_si512(acc + p0 + 16, _mm512_permutex2var_epi32(even, hi, odd));
  }
}
#endif

constexpr size_t kNoPairs = ~size_t{0};

// The taps (in offset order) paired where one follows the other, into `pairs` (room for ntaps);
// kNoPairs if a weight does not fit int16 (never for the plan's terms: |W_t| <= 2^14).
size_t MakePairs(const Tap* taps, size_t ntaps, Pair* pairs) {
  for (size_t i = 0; i < ntaps; ++i) {
    if (taps[i].w < -32768 || taps[i].w > 32767) return kNoPairs;
  }
  size_t np = 0;
  for (size_t i = 0; i < ntaps; ++np) {
    const uint32_t w0 = static_cast<uint16_t>(taps[i].w);
    pairs[np].off = taps[i].off;
    if (i + 1 < ntaps && taps[i + 1].off == taps[i].off + 1) {
      pairs[np].w = static_cast<int32_t>(w0 | static_cast<uint32_t>(static_cast<uint16_t>(taps[i + 1].w)) << 16);
      i += 2;
    } else {
      pairs[np].w = static_cast<int32_t>(w0);
      i += 1;
    }
  }
  return np;
}

template <bool kPairs>
__attribute__((always_inline)) inline void RunImpl(const DepthwiseGeometry& g, const uint8_t* xc,
                                                   uint8_t flip, uint8_t pad, const DepthwiseChannels& ch,
                                                   DepthwiseScratch& s) {
  const Layout l = MakeLayout(g);
  const int64_t KH = g.KH, KW = g.KW, SH = g.SH, DH = g.DH, DW = g.DW, SW = g.SW;
  const int64_t KK = KH * KW, n = g.out_h * l.wv;  // n: virtual output pixels
  // The activation indices once, then each term's operand from them (branch-free arithmetic on
  // whole planes, which the compiler vectorizes).
  s.index.resize(static_cast<size_t>(l.plane));
  FillPlane(g, l, xc, flip, pad, s.row, s.index.data());
  s.planes.resize(static_cast<size_t>(ch.nterms * l.plane + kSlack));
  const uint8_t* __restrict index = s.index.data();
  for (int t = 0; t < ch.nterms; ++t) {
    int16_t* __restrict out = s.planes.data() + t * l.plane;
    const XTransform& tr = ch.transforms[t];
    const int zero = tr.zero, r = tr.param;
    if (tr.kind == XTransform::Kind::kRound && r == 0) {
      for (int64_t e = 0; e < l.plane; ++e) out[e] = static_cast<int16_t>(index[e] - zero);
    } else if (tr.kind == XTransform::Kind::kRound) {
      // round_r(a) = ((a + 2^(r-1)) >> r) << r, arithmetic shifts floor (|a| <= 255).
      const int half = 1 << (r - 1);
      for (int64_t e = 0; e < l.plane; ++e) {
        out[e] = static_cast<int16_t>(((index[e] - zero + half) >> r) * (1 << r));
      }
    } else {
      // Booth digit j of a (10-bit two's complement): -2 b[2j+1] + b[2j] + b[2j-1], times 2^shift.
      const int j = r, shift = tr.shift;
      const int lo_shift = j > 0 ? 2 * j - 1 : 0, lo_mask = j > 0 ? 1 : 0;
      for (int64_t e = 0; e < l.plane; ++e) {
        const int v = (index[e] - zero) & 0x3FF;
        const int d = -2 * ((v >> (2 * j + 1)) & 1) + ((v >> (2 * j)) & 1) + ((v >> lo_shift) & lo_mask);
        out[e] = static_cast<int16_t>(d * (1 << shift));
      }
    }
  }
  const auto offset = [&](int64_t i, int64_t j) {
    return (((i * DH) % SH) * SW + (j * DW) % SW) * l.phase + ((i * DH) / SH) * l.wv + (j * DW) / SW;
  };
  // Each tap's offset in its term's planes, and the taps in offset order: computed once per
  // geometry (a task runs many channels).
  if (!s.prepared || std::memcmp(&s.geometry, &g, sizeof g) != 0) {
    s.tap_off.resize(static_cast<size_t>(KK));
    s.order.resize(static_cast<size_t>(KK));
    for (int64_t k = 0; k < KK; ++k) {
      s.tap_off[static_cast<size_t>(k)] = offset(k / KW, k % KW);
      s.order[static_cast<size_t>(k)] = k;
    }
    std::sort(s.order.begin(), s.order.end(), [&s](int64_t a, int64_t b) {
      return s.tap_off[static_cast<size_t>(a)] < s.tap_off[static_cast<size_t>(b)];
    });
    s.geometry = g;
    s.prepared = true;
  }
  s.acc.resize(static_cast<size_t>(n + 32));
  int32_t* __restrict acc = s.acc.data();
  for (int m = 0; m < ch.count; ++m) {
#ifdef AXONNX_X86
    if constexpr (kPairs) {
      // Fields stored one by one into sized arrays: a push_back of the struct built on the stack
      // stalled on store forwarding, a quarter of the time at 7x7.
      s.taps.resize(static_cast<size_t>(ch.nterms * KK));
      s.pairs.resize(static_cast<size_t>(ch.nterms * KK));
      Tap* taps = s.taps.data();
      size_t ntaps = 0;
      for (int t = 0; t < ch.nterms; ++t) {  // in offset order: terms by plane, taps by s.order
        const int32_t* w = ch.weights[t] + m * KK;
        for (int64_t k : s.order) {
          if (!w[k]) continue;
          taps[ntaps].off = t * l.plane + s.tap_off[static_cast<size_t>(k)];
          taps[ntaps].w = w[k];
          ++ntaps;
        }
      }
      const size_t npairs = MakePairs(taps, ntaps, s.pairs.data());
      if (npairs != kNoPairs) {
        ConvPairsAvx512(s.planes.data(), s.pairs.data(), npairs, n, ch.base[m], acc);
        goto luts;
      }
    }
#endif
    std::fill(acc, acc + n, ch.base[m]);
    for (int t = 0; t < ch.nterms; ++t) {
      const int32_t* w = ch.weights[t] + m * KK;
      const int16_t* plane = s.planes.data() + t * l.plane;
      for (int64_t i = 0; i < KH; ++i) {
        for (int64_t j = 0; j < KW; ++j) {
          const int32_t wv = w[i * KW + j];
          if (wv == 0) continue;
          const int16_t* __restrict src = plane + offset(i, j);
          for (int64_t p = 0; p < n; ++p) acc[p] += wv * static_cast<int32_t>(src[p]);
        }
      }
    }
  luts:
    if (ch.luts) {
      LutErrorAdd(*ch.luts, ch.lut_m0 + m, ch.lut_m0 + m + 1, s.index.data(), s.tap_off.data(),
                  static_cast<int>(n), acc, 0);
    }
    RequantizeRows(acc, static_cast<size_t>(l.wv), static_cast<int>(g.out_h), static_cast<int>(g.out_w),
                   ch.scale[m], ch.zero_point, ch.lo, ch.hi, ch.y[m], static_cast<size_t>(g.out_w));
  }
}

void RunPortable(const DepthwiseGeometry& g, const uint8_t* xc, uint8_t flip, uint8_t pad,
                 const DepthwiseChannels& ch, DepthwiseScratch& s) {
  RunImpl<false>(g, xc, flip, pad, ch, s);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2"))) void RunAvx2(const DepthwiseGeometry& g, const uint8_t* xc, uint8_t flip,
                                             uint8_t pad, const DepthwiseChannels& ch, DepthwiseScratch& s) {
  RunImpl<false>(g, xc, flip, pad, ch, s);
}
__attribute__((target("avx512f,avx512bw,avx512vl,prefer-vector-width=512"))) void RunAvx512(
    const DepthwiseGeometry& g, const uint8_t* xc, uint8_t flip, uint8_t pad, const DepthwiseChannels& ch,
    DepthwiseScratch& s) {
  RunImpl<true>(g, xc, flip, pad, ch, s);
}
#endif


#ifdef AXONNX_X86
// ---- Channel blocks: depthwise_block.inc over each target's primitives -------------------------
#pragma GCC push_options
#pragma GCC target("avx2")
namespace avx2 {
struct V {
  __m256i a, b;  // lanes 0-7 / words 0-15, and the rest
};
inline V Load(const void* p) {
  const __m256i* q = static_cast<const __m256i*>(p);
  return {_mm256_loadu_si256(q), _mm256_loadu_si256(q + 1)};
}
inline void Store(void* p, V v) {
  __m256i* q = static_cast<__m256i*>(p);
  _mm256_storeu_si256(q, v.a);
  _mm256_storeu_si256(q + 1, v.b);
}
inline V Dot(V acc, V x, V w) {
  return {_mm256_add_epi32(acc.a, _mm256_madd_epi16(x.a, w.a)), _mm256_add_epi32(acc.b, _mm256_madd_epi16(x.b, w.b))};
}
inline V Widen(const uint8_t* lo, const uint8_t* hi) {
  return {_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo))),
          _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hi)))};
}
inline V Interleave(V v) {
  // unpack works within 128-bit halves: channels 0-3 | 8-11 and 4-7 | 12-15, then reordered.
  const __m256i l = _mm256_unpacklo_epi16(v.a, v.b), h = _mm256_unpackhi_epi16(v.a, v.b);
  return {_mm256_permute2x128_si256(l, h, 0x20), _mm256_permute2x128_si256(l, h, 0x31)};
}
inline V Set16(int x) { return {_mm256_set1_epi16(static_cast<short>(x)), _mm256_set1_epi16(static_cast<short>(x))}; }
inline V Add16(V x, V y) { return {_mm256_add_epi16(x.a, y.a), _mm256_add_epi16(x.b, y.b)}; }
inline V Sub16(V x, V y) { return {_mm256_sub_epi16(x.a, y.a), _mm256_sub_epi16(x.b, y.b)}; }
inline V And16(V x, V y) { return {_mm256_and_si256(x.a, y.a), _mm256_and_si256(x.b, y.b)}; }
inline V Sra16(V x, __m128i c) { return {_mm256_sra_epi16(x.a, c), _mm256_sra_epi16(x.b, c)}; }
inline V Srl16(V x, __m128i c) { return {_mm256_srl_epi16(x.a, c), _mm256_srl_epi16(x.b, c)}; }
inline V Sll16(V x, __m128i c) { return {_mm256_sll_epi16(x.a, c), _mm256_sll_epi16(x.b, c)}; }
// RequantizeRows's formula, per lane: the same float products, clamp, cvtps2dq (half to even).
struct Requantizer {
  __m256 sa, sb, fmin, fmax;
  __m256i zp;
  Requantizer(const float* scale, int zero_point, int lo, int hi)
      : sa(_mm256_loadu_ps(scale)), sb(_mm256_loadu_ps(scale + 8)),
        fmin(_mm256_set1_ps(static_cast<float>(lo - zero_point))),
        fmax(_mm256_set1_ps(static_cast<float>(hi - zero_point))), zp(_mm256_set1_epi32(zero_point)) {}
  __m128i Bytes(V acc) const {
    const __m256i qa = Quantize(acc.a, sa), qb = Quantize(acc.b, sb);
    // Values in [lo, hi] fit int16 exactly; their low bytes, in lane order.
    __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(qa, qb), 0xD8);
    w = _mm256_and_si256(w, _mm256_set1_epi16(0xFF));
    return _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
  }
  __m256i Quantize(__m256i acc, __m256 scale) const {
    const __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc), scale), fmin), fmax);
    return _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
  }
};
constexpr int kPixels = 4;  // 8 accumulators of 16 registers
using B = __m256i;
inline B Lo8(B a, B b) { return _mm256_unpacklo_epi8(a, b); }
inline B Hi8(B a, B b) { return _mm256_unpackhi_epi8(a, b); }
inline B Lo16(B a, B b) { return _mm256_unpacklo_epi16(a, b); }
inline B Hi16(B a, B b) { return _mm256_unpackhi_epi16(a, b); }
inline B Lo32(B a, B b) { return _mm256_unpacklo_epi32(a, b); }
inline B Hi32(B a, B b) { return _mm256_unpackhi_epi32(a, b); }
inline B Lo64(B a, B b) { return _mm256_unpacklo_epi64(a, b); }
inline B Hi64(B a, B b) { return _mm256_unpackhi_epi64(a, b); }
inline B SetBytes(uint8_t v) { return _mm256_set1_epi8(static_cast<char>(v)); }
inline B Xor(B a, B b) { return _mm256_xor_si256(a, b); }
inline B LoadBytes(const uint8_t* p, int64_t n) {
  if (n == 32) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  alignas(32) uint8_t tail[32] = {};
  std::memcpy(tail, p, static_cast<size_t>(n));
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(tail));
}
inline void StoreBytes(uint8_t* p, B v, int64_t n) {
  if (n == 32) return _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
  alignas(32) uint8_t tail[32];
  _mm256_store_si256(reinterpret_cast<__m256i*>(tail), v);
  std::memcpy(p, tail, static_cast<size_t>(n));
}
inline void StoreGroups(B v, uint8_t* const* dst) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[0]), _mm256_castsi256_si128(v));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[1]), _mm256_extracti128_si256(v, 1));
}
#include "roupconv/depthwise_block.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni")
namespace avx512 {
using V = __m512i;
inline V Load(const void* p) { return _mm512_loadu_si512(p); }
inline void Store(void* p, V v) { _mm512_storeu_si512(p, v); }
inline V Dot(V acc, V x, V w) { return _mm512_dpwssd_epi32(acc, x, w); }
inline V Widen(const uint8_t* lo, const uint8_t* hi) {
  return _mm512_cvtepu8_epi16(_mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hi)),
                                                _mm_loadu_si128(reinterpret_cast<const __m128i*>(lo))));
}
inline V Interleave(V v) {
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(order, v);
}
inline V Set16(int x) { return _mm512_set1_epi16(static_cast<short>(x)); }
inline V Add16(V x, V y) { return _mm512_add_epi16(x, y); }
inline V Sub16(V x, V y) { return _mm512_sub_epi16(x, y); }
inline V And16(V x, V y) { return _mm512_and_si512(x, y); }
inline V Sra16(V x, __m128i c) { return _mm512_sra_epi16(x, c); }
inline V Srl16(V x, __m128i c) { return _mm512_srl_epi16(x, c); }
inline V Sll16(V x, __m128i c) { return _mm512_sll_epi16(x, c); }
struct Requantizer {  // as avx2's
  __m512 scale, fmin, fmax;
  __m512i zp;
  Requantizer(const float* s, int zero_point, int lo, int hi)
      : scale(_mm512_loadu_ps(s)), fmin(_mm512_set1_ps(static_cast<float>(lo - zero_point))),
        fmax(_mm512_set1_ps(static_cast<float>(hi - zero_point))), zp(_mm512_set1_epi32(zero_point)) {}
  __m128i Bytes(V acc) const {
    const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), scale), fmin), fmax);
    return _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), zp));  // low bytes
  }
};
constexpr int kPixels = 8;  // enough independent vpdpwssd chains to hide their latency
using B = __m512i;
inline B Lo8(B a, B b) { return _mm512_unpacklo_epi8(a, b); }
inline B Hi8(B a, B b) { return _mm512_unpackhi_epi8(a, b); }
inline B Lo16(B a, B b) { return _mm512_unpacklo_epi16(a, b); }
inline B Hi16(B a, B b) { return _mm512_unpackhi_epi16(a, b); }
inline B Lo32(B a, B b) { return _mm512_unpacklo_epi32(a, b); }
inline B Hi32(B a, B b) { return _mm512_unpackhi_epi32(a, b); }
inline B Lo64(B a, B b) { return _mm512_unpacklo_epi64(a, b); }
inline B Hi64(B a, B b) { return _mm512_unpackhi_epi64(a, b); }
inline B SetBytes(uint8_t v) { return _mm512_set1_epi8(static_cast<char>(v)); }
inline B Xor(B a, B b) { return _mm512_xor_si512(a, b); }
inline __mmask64 FirstBytes(int64_t n) { return n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1; }
inline B LoadBytes(const uint8_t* p, int64_t n) { return _mm512_maskz_loadu_epi8(FirstBytes(n), p); }
inline void StoreBytes(uint8_t* p, B v, int64_t n) { _mm512_mask_storeu_epi8(p, FirstBytes(n), v); }
inline void StoreGroups(B v, uint8_t* const* dst) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[0]), _mm512_castsi512_si128(v));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[1]), _mm512_extracti32x4_epi32(v, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[2]), _mm512_extracti32x4_epi32(v, 2));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[3]), _mm512_extracti32x4_epi32(v, 3));
}
#include "roupconv/depthwise_block.inc"
}  // namespace avx512
#pragma GCC pop_options
#endif  // AXONNX_X86

}  // namespace

DepthwisePacked PackDepthwise(const int32_t* const* weights, int nterms, int64_t M, int64_t KH, int64_t KW) {
  DepthwisePacked p;
  const int64_t KK = KH * KW;
  for (int t = 0; t < nterms; ++t) {
    for (int64_t e = 0; e < M * KK; ++e) {
      if (weights[t][e] < -32768 || weights[t][e] > 32767) return p;  // never for the plan's terms
    }
  }
  const int64_t blocks = CeilDiv(M, kDepthwiseLanes);
  p.op_begin.push_back(0);
  for (int64_t b = 0; b < blocks; ++b) {
    for (int t = 0; t < nterms; ++t) {
      for (int64_t i = 0; i < KH; ++i) {
        for (int64_t k = 0; 2 * k < KW; ++k) {
          int32_t words[kDepthwiseLanes] = {};
          bool any = false;
          for (int l = 0; l < kDepthwiseLanes && b * kDepthwiseLanes + l < M; ++l) {
            const int32_t* w = weights[t] + (b * kDepthwiseLanes + l) * KK + i * KW;
            const uint32_t w0 = static_cast<uint16_t>(w[2 * k]), w1 = 2 * k + 1 < KW ? static_cast<uint16_t>(w[2 * k + 1]) : 0;
            words[l] = static_cast<int32_t>(w0 | w1 << 16);
            any |= words[l] != 0;
          }
          if (!any) continue;
          p.ops.push_back({t, static_cast<int32_t>(i), static_cast<int32_t>(k)});
          p.words.insert(p.words.end(), words, words + kDepthwiseLanes);
        }
      }
    }
    p.op_begin.push_back(static_cast<int32_t>(p.ops.size()));
  }
  p.ok = nterms <= 16;
  return p;
}

bool DepthwiseBlocksAvailable() {
#ifdef AXONNX_X86
  return Cpu().avx2;
#else
  return false;
#endif
}

void DepthwiseBlockRun(const DepthwiseBlockArgs& a, int64_t n, int64_t b0, int64_t b1, int64_t oh0, int64_t oh1,
                       DepthwiseScratch& s) {
#ifdef AXONNX_X86
  if (Cpu().avx512 && Cpu().vnni512) return avx512::BlockRun(a, n, b0, b1, oh0, oh1, s);
  if (Cpu().avx2) return avx2::BlockRun(a, n, b0, b1, oh0, oh1, s);
#endif
  (void)a, (void)n, (void)b0, (void)b1, (void)oh0, (void)oh1, (void)s;
}

void DepthwiseRun(const DepthwiseGeometry& g, const uint8_t* xc, uint8_t flip, uint8_t pad,
                  const DepthwiseChannels& ch, DepthwiseScratch& scratch) {
#if defined(__x86_64__) || defined(__i386__)
  if (Cpu().avx512) return RunAvx512(g, xc, flip, pad, ch, scratch);
  if (Cpu().avx2) return RunAvx2(g, xc, flip, pad, ch, scratch);
#endif
  RunPortable(g, xc, flip, pad, ch, scratch);
}

}  // namespace axonnx::roupconv
