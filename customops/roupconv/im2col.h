// ROUPConv's activation layouts for the GEMMs: the row-major im2col of the int16 GEMM and the LUT
// gathers, the packed u8 quads of the u8 x s8 GEMM, and the interleaved input bands that the u8
// GEMM reads in place (implicit im2col). Plain C++ (SSE2 where it helps), header-only: one user,
// execute.cc.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "roupconv/cpu.h"
#include "roupconv/gemm.h"
#include "roupconv/gemm_u8.h"
#include "roupconv/util.h"

#if defined(__x86_64__) || defined(__i386__)
#define AXONNX_X86 1
#include <immintrin.h>
#endif

namespace axonnx::roupconv {

// Four channel rows of W activation indices interleaved into W 32-bit words (byte e of word i:
// row e at column i), each byte XORed with flip.
inline void InterleaveRow(const uint8_t* const* src, int64_t W, uint8_t flip, uint8_t* __restrict dst) {
  const uint32_t flip4 = flip * 0x01010101u;
  const uint8_t* __restrict a = src[0];
  const uint8_t* __restrict b = src[1];
  const uint8_t* __restrict c = src[2];
  const uint8_t* __restrict d = src[3];
  int64_t i = 0;
#ifdef AXONNX_X86
  // 16 (then 8) pixels at a time: bytes of a, b, c, d interleaved into words (SSE2).
  const __m128i vflip = _mm_set1_epi8(static_cast<char>(flip));
  for (; i + 16 <= W; i += 16) {
    const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i));
    const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i));
    const __m128i vc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + i));
    const __m128i vd = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i));
    const __m128i ab0 = _mm_unpacklo_epi8(va, vb), ab1 = _mm_unpackhi_epi8(va, vb);
    const __m128i cd0 = _mm_unpacklo_epi8(vc, vd), cd1 = _mm_unpackhi_epi8(vc, vd);
    __m128i* o = reinterpret_cast<__m128i*>(dst + kQuad * i);
    _mm_storeu_si128(o, _mm_xor_si128(_mm_unpacklo_epi16(ab0, cd0), vflip));
    _mm_storeu_si128(o + 1, _mm_xor_si128(_mm_unpackhi_epi16(ab0, cd0), vflip));
    _mm_storeu_si128(o + 2, _mm_xor_si128(_mm_unpacklo_epi16(ab1, cd1), vflip));
    _mm_storeu_si128(o + 3, _mm_xor_si128(_mm_unpackhi_epi16(ab1, cd1), vflip));
  }
  for (; i + 8 <= W; i += 8) {
    const __m128i va = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a + i));
    const __m128i vb = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + i));
    const __m128i vc = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + i));
    const __m128i vd = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(d + i));
    const __m128i ab0 = _mm_unpacklo_epi8(va, vb), cd0 = _mm_unpacklo_epi8(vc, vd);
    __m128i* o = reinterpret_cast<__m128i*>(dst + kQuad * i);
    _mm_storeu_si128(o, _mm_xor_si128(_mm_unpacklo_epi16(ab0, cd0), vflip));
    _mm_storeu_si128(o + 1, _mm_xor_si128(_mm_unpackhi_epi16(ab0, cd0), vflip));
  }
#endif
  for (; i < W; ++i) {
    const uint32_t word = (a[i] | b[i] << 8 | c[i] << 16 | static_cast<uint32_t>(d[i]) << 24) ^ flip4;
    std::memcpy(dst + kQuad * i, &word, sizeof word);
  }
}

// The activation index u of every window position of one image and one conv group, for output
// pixels [p0, p1): index[k * cols + (p - p0)], k = (c * KH + i) * KW + j. Padding and the columns
// past p1 hold the index of the zero point. The input rows the pixels need are first copied
// into a band padded on every side, so that each row of `index` is a plain (strided) copy.
struct Im2Col {
  int64_t H, W, KH, KW, SH, SW, DH, DW, pad_top, pad_left, out_w;

  // Quads is plain C++ that the compiler vectorizes, built twice: for the baseline ISA and for
  // AVX-512 (512-bit moves), chosen by Cpu() (same bytes either way).
  void operator()(const uint8_t* x, int64_t channels, int64_t p0, int64_t p1, int64_t cols,
                  uint8_t flip, uint8_t pad, uint8_t* index, std::vector<uint8_t>& band) const {
    RowsImpl(x, channels, p0, p1, cols, flip, pad, index, band);
  }
  void Quads(const uint8_t* x, int64_t channels, int64_t p0, int64_t p1, int64_t cols, uint8_t flip,
             uint8_t pad, uint8_t* packed, std::vector<uint8_t>& band) const {
#ifdef AXONNX_X86
    if (Cpu().avx512) return QuadsAvx512(x, channels, p0, p1, cols, flip, pad, packed, band);
#endif
    QuadsImpl(x, channels, p0, p1, cols, flip, pad, packed, band);
  }
#ifdef AXONNX_X86
  __attribute__((target("avx512f,avx512bw,avx512vl,prefer-vector-width=512"))) void QuadsAvx512(
      const uint8_t* x, int64_t channels, int64_t p0, int64_t p1, int64_t cols, uint8_t flip,
      uint8_t pad, uint8_t* packed, std::vector<uint8_t>& band) const {
    QuadsImpl(x, channels, p0, p1, cols, flip, pad, packed, band);
  }
#endif

  __attribute__((always_inline)) inline void RowsImpl(
      const uint8_t* x, int64_t channels, int64_t p0, int64_t p1, int64_t cols, uint8_t flip,
      uint8_t pad, uint8_t* index, std::vector<uint8_t>& band) const {
    // Locals, not members: byte stores may alias *this, which would reload every member.
    const int64_t H = this->H, W = this->W, KH = this->KH, KW = this->KW, SH = this->SH,
                  SW = this->SW, DH = this->DH, DW = this->DW, pad_left = this->pad_left,
                  out_w = this->out_w;
    const int64_t oh0 = p0 / out_w, oh1 = (p1 - 1) / out_w;
    const int64_t ih0 = oh0 * SH - pad_top;
    const int64_t band_h = (oh1 - oh0) * SH + (KH - 1) * DH + 1;
    const int64_t band_w = std::max(W + pad_left, (out_w - 1) * SW + (KW - 1) * DW + 1);
    band.assign(static_cast<size_t>(channels * band_h * band_w), pad);
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t r = std::max<int64_t>(0, -ih0); r < band_h && ih0 + r < H; ++r) {
        const uint8_t* __restrict src = x + (c * H + ih0 + r) * W;
        uint8_t* __restrict dst = band.data() + (c * band_h + r) * band_w + pad_left;
        if (flip) {
          for (int64_t i = 0; i < W; ++i) dst[i] = static_cast<uint8_t>(src[i] ^ 0x80u);
        } else {
          std::memcpy(dst, src, static_cast<size_t>(W));
        }
      }
    }
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t i = 0; i < KH; ++i) {
        for (int64_t j = 0; j < KW; ++j) {
          uint8_t* dst = index + ((c * KH + i) * KW + j) * cols - p0;  // indexed by p
          for (int64_t oh = oh0; oh <= oh1; ++oh) {
            const int64_t pa = std::max(p0, oh * out_w), pb = std::min(p1, (oh + 1) * out_w);
            const uint8_t* __restrict src = band.data() + (c * band_h + (oh - oh0) * SH + i * DH) * band_w +
                                 j * DW + (pa - oh * out_w) * SW;
            uint8_t* __restrict d = dst + pa;
            const int64_t n = pb - pa;
            if (SW == 1) {
              for (int64_t t = 0; t < n; ++t) d[t] = src[t];
            } else if (SW == 2) {
              for (int64_t t = 0; t < n; ++t) d[t] = src[2 * t];
            } else {
              for (int64_t t = 0; t < n; ++t) d[t] = src[t * SW];
            }
          }
          std::memset(dst + p1, pad, static_cast<size_t>(cols - (p1 - p0)));
        }
      }
    }
  }

  // Implicit im2col (stride phases): the activation indices of output rows [oh0, oh1], four
  // channels per 32-bit word, as one band per stride phase (rph, cph) < (SH, SW) and channel quad
  // g: word ((ph * cq + g) * rows + rp) * wv + cp, ph = rph * SW + cph, holds input row
  // ih0 + rp * SH + rph, column cp * SW + cph - pad_left (the zero point's index outside the
  // input). Output pixel (oh, ow) of tap (i, j) then reads word ow + (j * DW) / SW of band row
  // oh - oh0 + (i * DH) / SH in phase ((i * DH) % SH, (j * DW) % SW): along a virtual output row
  // of wv pixels (the last wv - out_w of them discarded), a run of 16 pixels is 64 contiguous
  // bytes, which the GEMM reads in place (quad_off).
  struct BandShape {
    int64_t cq, rows, wv, words;  // words: the band and the slack the last tiles read past it
  };
  BandShape Shape(int64_t channels, int64_t nrows_out) const {
    BandShape b;
    b.cq = CeilDiv(channels, kQuad);
    b.rows = nrows_out + ((KH - 1) * DH) / SH;
    b.wv = out_w + ((KW - 1) * DW) / SW;
    b.words = SH * SW * b.cq * b.rows * b.wv + b.wv + 2 * kTile;
    return b;
  }
  // Byte offsets of the k-quads (i * KW + j) * cq + g in the band.
  void QuadOffsets(const BandShape& b, std::vector<int32_t>& off) const {
    off.clear();
    for (int64_t i = 0; i < KH; ++i) {
      for (int64_t j = 0; j < KW; ++j) {
        const int64_t ph = ((i * DH) % SH) * SW + (j * DW) % SW;
        for (int64_t g = 0; g < b.cq; ++g) {
          off.push_back(static_cast<int32_t>(
              kQuad * (((ph * b.cq + g) * b.rows + (i * DH) / SH) * b.wv + (j * DW) / SW)));
        }
      }
    }
  }
  void Band(const uint8_t* x, int64_t channels, int64_t oh0, int64_t nrows_out, uint8_t flip,
            uint8_t pad, const BandShape& b, uint8_t* band, std::vector<uint8_t>& row) const {
    const int64_t H = this->H, W = this->W, SH = this->SH, SW = this->SW, pad_left = this->pad_left;
    const int64_t ih0 = oh0 * SH - pad_top;
    std::memset(band, pad, static_cast<size_t>(b.words * kQuad));
    std::vector<uint8_t> pad_row;
    // Whole rows at stride 1 without column padding (1x1 convolutions): the rows are contiguous
    // in x and in the band, one interleave per channel quad.
    const bool contiguous = SH == 1 && SW == 1 && pad_left == 0 && b.wv == W;
    for (int64_t g = 0; g < b.cq && contiguous; ++g) {
      const int64_t r0 = std::max<int64_t>(0, -ih0), r1 = std::min(b.rows, H - ih0);
      if (r1 <= r0) continue;
      const uint8_t* src[kQuad];
      for (int e = 0; e < kQuad; ++e) {
        const int64_t c = g * kQuad + e;
        if (c < channels) {
          src[e] = x + (c * H + ih0 + r0) * W;
        } else {
          if (pad_row.size() < static_cast<size_t>((r1 - r0) * W)) {
            pad_row.assign(static_cast<size_t>((r1 - r0) * W), static_cast<uint8_t>(pad ^ flip));
          }
          src[e] = pad_row.data();
        }
      }
      InterleaveRow(src, (r1 - r0) * W, flip, band + ((g * b.rows + r0) * b.wv) * kQuad);
    }
    for (int64_t g = 0; g < b.cq && !contiguous; ++g) {
      for (int64_t r = std::max<int64_t>(0, -ih0); r < b.rows * SH && ih0 + r < H; ++r) {
        const int64_t rph = r % SH, rp = r / SH;
        const uint8_t* src[kQuad];
        for (int e = 0; e < kQuad; ++e) {
          const int64_t c = g * kQuad + e;
          if (c < channels) {
            src[e] = x + (c * H + ih0 + r) * W;
          } else {
            if (pad_row.empty()) pad_row.assign(static_cast<size_t>(W), static_cast<uint8_t>(pad ^ flip));
            src[e] = pad_row.data();
          }
        }
        if (SW == 1) {  // straight into the band
          InterleaveRow(src, W, flip, band + (((rph * b.cq + g) * b.rows + rp) * b.wv + pad_left) * kQuad);
          continue;
        }
        if (SW == 2) {
          // The row at word offset pad_left of a padded row of 2 * wv words, split into its
          // even and odd words: phase cph's row is words cph, cph + 2, ...
          const int64_t len = RoundUp(std::max(2 * b.wv, W + pad_left), 8);
          row.resize(static_cast<size_t>(len * kQuad));
          uint32_t* words = reinterpret_cast<uint32_t*>(row.data());
          const uint32_t pad4 = pad * 0x01010101u;
          std::fill(words, words + pad_left, pad4);
          std::fill(words + W + pad_left, words + len, pad4);
          InterleaveRow(src, W, flip, row.data() + pad_left * kQuad);
          uint32_t* even = reinterpret_cast<uint32_t*>(band) + (rph * SW * b.cq + g) * b.rows * b.wv + rp * b.wv;
          uint32_t* odd = even + b.cq * b.rows * b.wv;
          int64_t cp = 0;
#ifdef AXONNX_X86
          for (; cp + 4 <= b.wv; cp += 4) {
            const __m128 lo = _mm_castsi128_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(words + 2 * cp)));
            const __m128 hi = _mm_castsi128_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(words + 2 * cp + 4)));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(even + cp), _mm_castps_si128(_mm_shuffle_ps(lo, hi, 0x88)));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(odd + cp), _mm_castps_si128(_mm_shuffle_ps(lo, hi, 0xDD)));
          }
#endif
          for (; cp < b.wv; ++cp) {
            even[cp] = words[2 * cp];
            odd[cp] = words[2 * cp + 1];
          }
          continue;
        }
        row.resize(static_cast<size_t>(W * kQuad));
        InterleaveRow(src, W, flip, row.data());
        const uint32_t* words = reinterpret_cast<const uint32_t*>(row.data());
        for (int64_t cph = 0; cph < SW; ++cph) {
          uint32_t* dst = reinterpret_cast<uint32_t*>(band) + ((rph * SW + cph) * b.cq + g) * b.rows * b.wv + rp * b.wv;
          // columns cp with 0 <= cp * SW + cph - pad_left < W
          const int64_t cp0 = std::max<int64_t>(0, CeilDiv(pad_left - cph, SW));
          for (int64_t cp = cp0; cp < b.wv; ++cp) {
            const int64_t iw = cp * SW + cph - pad_left;
            if (iw >= W) break;
            dst[cp] = words[iw];
          }
        }
      }
    }
  }

  // The same indices packed as GemmU8S8 reads them (gemm_u8.h), in the order k' = (i * KW + j) *
  // Cq + c (channels padded with the zero point to Cq, a multiple of 4): quad q = (i * KW + j) *
  // Cq / 4 + c / 4. The band holds the four channels of a quad interleaved, so one quad of one
  // pixel is one 32-bit word of the band, and a tile's pixels in one output row are a (strided)
  // run of words: one 64-byte copy for a whole tile at stride 1.
  __attribute__((always_inline)) inline void QuadsImpl(
      const uint8_t* x, int64_t channels, int64_t p0, int64_t p1, int64_t cols, uint8_t flip,
      uint8_t pad, uint8_t* packed, std::vector<uint8_t>& band) const {
    const int64_t H = this->H, W = this->W, KH = this->KH, KW = this->KW, SH = this->SH,
                  SW = this->SW, DH = this->DH, DW = this->DW, pad_left = this->pad_left,
                  out_w = this->out_w;
    const int64_t cq = CeilDiv(channels, kQuad);
    const int64_t oh0 = p0 / out_w, oh1 = (p1 - 1) / out_w;
    const int64_t ih0 = oh0 * SH - pad_top;
    const int64_t band_h = (oh1 - oh0) * SH + (KH - 1) * DH + 1;
    const int64_t band_w = std::max(W + pad_left, (out_w - 1) * SW + (KW - 1) * DW + 1);
    band.assign(static_cast<size_t>(cq * band_h * band_w * kQuad), pad);
    std::vector<uint8_t> pad_row(static_cast<size_t>(W), static_cast<uint8_t>(pad ^ flip));
    for (int64_t g = 0; g < cq; ++g) {
      for (int64_t r = std::max<int64_t>(0, -ih0); r < band_h && ih0 + r < H; ++r) {
        const uint8_t* src[kQuad];
        for (int e = 0; e < kQuad; ++e) {
          const int64_t c = g * kQuad + e;
          src[e] = c < channels ? x + (c * H + ih0 + r) * W : pad_row.data();
        }
        InterleaveRow(src, W, flip, band.data() + ((g * band_h + r) * band_w + pad_left) * kQuad);
      }
    }
    const int64_t kquads = KH * KW * cq;
    const uint32_t pad4 = pad * 0x01010101u;
    const uint32_t* words = reinterpret_cast<const uint32_t*>(band.data());
    for (int64_t t = 0; t < cols / kTile; ++t) {
      uint32_t* tile = reinterpret_cast<uint32_t*>(packed) + t * kquads * kTile;
      int64_t c = 0;
      // Runs of pixels within one output row.
      while (c < kTile && p0 + t * kTile + c < p1) {
        const int64_t p = p0 + t * kTile + c, oh = p / out_w, ow = p % out_w;
        const int64_t len = std::min({kTile - c, out_w - ow, p1 - p});
        const uint32_t* base = words + (oh - oh0) * SH * band_w + ow * SW;
        uint32_t* out = tile + c;
        for (int64_t i = 0; i < KH; ++i) {
          for (int64_t j = 0; j < KW; ++j) {
            for (int64_t g = 0; g < cq; ++g, out += kTile) {
              const uint32_t* __restrict from = base + (g * band_h + i * DH) * band_w + j * DW;
              uint32_t* __restrict to = out;
              if (SW == 1 && len == kTile) {
                std::memcpy(to, from, kTile * sizeof(uint32_t));
              } else if (SW == 1) {
                for (int64_t n = 0; n < len; ++n) to[n] = from[n];
              } else if (SW == 2 && len == kTile) {
                for (int64_t n = 0; n < kTile; ++n) to[n] = from[2 * n];
              } else {
                for (int64_t n = 0; n < len; ++n) to[n] = from[n * SW];
              }
            }
          }
        }
        c += len;
      }
      if (c < kTile) {  // columns past p1
        for (int64_t q = 0; q < kquads; ++q) std::fill(tile + q * kTile + c, tile + (q + 1) * kTile, pad4);
      }
    }
  }
};

}  // namespace axonnx::roupconv
