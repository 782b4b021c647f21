#include "roupconv/roupconv.h"

#include <algorithm>
#include <cmath>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <sstream>

#include "roupconv/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#define AXONNX_X86 1
#include <immintrin.h>
#endif

namespace axonnx::roupconv {

ONNXTensorElementDataType ElementTypeOf(uint8_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8; }
ONNXTensorElementDataType ElementTypeOf(int8_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8; }

namespace {

constexpr size_t kMaxMultipliers = 256;  // multiplier_index is uint8
constexpr int kTableSize = 256;

bool IsSigned(ONNXTensorElementDataType type) { return type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8; }

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t RoundUp(int64_t a, int64_t b) { return CeilDiv(a, b) * b; }

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// With the activation encoded, digit j's partial product 4^j round(w - zw) D_j(x - zx) is split
// as (2^e round(w - zw)) x (2^(2j - e) D_j(x - zx)), e = WeightDigitExponent(j): a rounded
// 9-bit weight times 4^3 still fits int16, times 4^4 would not.
constexpr int WeightDigitExponent(int j) { return 2 * std::min(j, kNameDigits - 1); }

// Geometry attributes past this are refused: every size computed from them then stays far
// from int64 overflow (a pad near 2^63 would otherwise wrap the output shape).
constexpr int64_t kMaxGeometry = int64_t{1} << 24;

template <size_t N>
std::array<int64_t, N> ReadFixed(const std::vector<int64_t>& values, const char* name, int64_t min) {
  if (values.size() != N) {
    throw OpError(std::string(name) + " must hold " + std::to_string(N) + " values for a 2-D "
                  "convolution, got " + std::to_string(values.size()));
  }
  std::array<int64_t, N> out{};
  for (size_t i = 0; i < N; ++i) {
    if (values[i] < min || values[i] > kMaxGeometry) {
      throw OpError(std::string(name) + " values must lie in [" + std::to_string(min) + ", " +
                    std::to_string(kMaxGeometry) + "], got " + ShapeString(values));
    }
    out[i] = values[i];
  }
  return out;
}

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

}  // namespace

// Scratch buffers for one task, grown as needed and kept for the next runs. A pool rather than
// thread_local storage: TLS in a dlopen'ed library costs a __tls_get_addr call per access.
struct Scratch {
  std::vector<uint8_t> band;
  std::vector<uint8_t> index;
  std::vector<int16_t> packed;
  std::vector<uint8_t> quads;    // activation indices for the u8 GEMM
  std::vector<uint8_t> packed8;  // ... mapped through a GEMM's table
  std::vector<int32_t> acc;
  std::vector<int32_t> quad_off;  // per k-quad: its byte offset in `quads`
  std::vector<int32_t> row_of;    // a task's GEMM rows, relative to its first output channel
  DepthwiseScratch direct;
};

std::unique_ptr<Scratch> ScratchPool::Acquire() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (free_.empty()) return std::make_unique<Scratch>();
  std::unique_ptr<Scratch> s = std::move(free_.back());
  free_.pop_back();
  return s;
}

void ScratchPool::Release(std::unique_ptr<Scratch> scratch) {
  std::lock_guard<std::mutex> lock(mutex_);
  free_.push_back(std::move(scratch));
}

ScratchPool::ScratchPool() = default;
ScratchPool::~ScratchPool() = default;

// ---- construction: attributes, checked once ----------------------------------------------------

ROUPConvKernel::ROUPConvKernel(const OrtApi& api, const OrtKernelInfo* info,
                               ONNXTensorElementDataType x_type, ONNXTensorElementDataType w_type,
                               ONNXTensorElementDataType y_type)
    : api_(api),
      y_type_(y_type),
      x_flip_(IsSigned(x_type) ? 0x80 : 0),
      w_flip_(IsSigned(w_type) ? 0x80 : 0) {
  KernelAttributes attrs(api, info);
  node_name_ = attrs.node_name();
  try {
    if (attrs.InputCount() < 8) {
      throw OpError("needs QLinearConv's 8 inputs (x, x_scale, x_zero_point, w, w_scale, "
                    "w_zero_point, y_scale, y_zero_point) and an optional bias, got " +
                    std::to_string(attrs.InputCount()));
    }
    ReadAttributes(attrs);
    BuildLutRows();
    // With a constant weight, every weight-dependent check (and the plan) happens now.
    if (std::optional<TensorValue> w = attrs.ConstantInput(3)) {
      CheckWeightShape(w->shape);
      std::optional<TensorValue> zw = attrs.ConstantInput(5);
      if (zw) {
        const size_t m = static_cast<size_t>(w->shape[0]);
        if (zw->size() != 1 && zw->size() != m) {
          throw OpError("w_zero_point must be a scalar or hold one value per output channel (" +
                        std::to_string(m) + "), got shape " + ShapeString(zw->shape));
        }
        constant_plan_ = std::make_shared<const WeightPlan>(
            BuildPlan(w->data<uint8_t>(), w->shape, zw->data<uint8_t>(), zw->size()));
      }
    }
  } catch (const std::exception& e) {
    throw OpError(Prefix() + e.what());
  }
}

std::string ROUPConvKernel::Prefix() const {
  return std::string("[") + kOpName + "] node '" + node_name_ + "': ";
}

void ROUPConvKernel::ReadAttributes(const KernelAttributes& attrs) {
  if (auto v = attrs.String("auto_pad")) {
    static const char* const kModes[] = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"};
    if (std::none_of(std::begin(kModes), std::end(kModes), [&](const char* m) { return *v == m; })) {
      throw OpError("unknown auto_pad " + Quote(*v) + "; use NOTSET, SAME_UPPER, SAME_LOWER or VALID");
    }
    conv_.auto_pad = *v;
  }
  if (auto v = attrs.Ints("strides")) conv_.strides = ReadFixed<2>(*v, "strides", 1);
  if (auto v = attrs.Ints("dilations")) conv_.dilations = ReadFixed<2>(*v, "dilations", 1);
  if (auto v = attrs.Ints("pads")) conv_.pads = ReadFixed<4>(*v, "pads", 0);
  if (auto v = attrs.Ints("kernel_shape")) {
    const auto k = ReadFixed<2>(*v, "kernel_shape", 1);
    conv_.kernel_shape.assign(k.begin(), k.end());
  }
  if (auto v = attrs.Int("group")) {
    if (*v < 1) throw OpError("group must be >= 1, got " + std::to_string(*v));
    conv_.group = *v;
  }

  // Multipliers and their LUTs.
  const std::vector<std::string> names =
      attrs.Strings("multipliers").value_or(std::vector<std::string>{"ROUP(0,0)"});
  if (names.empty()) throw OpError("multipliers is empty; name at least one multiplier");
  if (names.size() > kMaxMultipliers) {
    throw OpError("at most 256 multipliers per node (multiplier_index is uint8), got " +
                  std::to_string(names.size()));
  }
  size_t luts = 0;
  for (const std::string& name : names) {
    Multiplier m = ParseMultiplier(name);
    if (m.kind == MultiplierKind::kLut) m.lut = static_cast<int>(luts++);
    multipliers_.push_back(std::move(m));
  }

  if (auto v = attrs.String("encoded_operand")) {
    if (*v != "weight" && *v != "activation") {
      throw OpError("encoded_operand must be 'weight' or 'activation', got " + Quote(*v));
    }
    encode_activation_ = *v == "activation";
  }

  std::optional<TensorValue> tables = attrs.Tensor("lut_tables");
  if (luts == 0 && tables && tables->size() != 0) {
    throw OpError("lut_tables holds tables, but multipliers names no LUT(...) entry");
  }
  if (luts > 0) {
    if (!tables) {
      throw OpError("multipliers names " + std::to_string(luts) +
                    " LUT(...) entries, but the lut_tables attribute is missing");
    }
    if (tables->type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32) {
      throw OpError(std::string("lut_tables must be an int32 tensor, got ") + TypeName(tables->type));
    }
    const std::vector<int64_t> expected{static_cast<int64_t>(luts), kTableSize, kTableSize};
    if (tables->shape != expected) {
      throw OpError("lut_tables has shape " + ShapeString(tables->shape) + ", but multipliers names " +
                    std::to_string(luts) + " LUT(...) entries: expected " + ShapeString(expected));
    }
    lut_tables_.resize(luts);
    for (size_t l = 0; l < luts; ++l) {
      const int32_t* t = tables->data<int32_t>() + l * kTableSize * kTableSize;
      lut_tables_[l].assign(t, t + kTableSize * kTableSize);
    }
  }
  lut_signedness_.assign(2 * luts, 0);
  if (auto v = attrs.Ints("lut_signedness")) {
    if (v->size() != 2 * luts) {
      throw OpError("lut_signedness needs 2 values per LUT (" + std::to_string(2 * luts) + "), got " +
                    std::to_string(v->size()));
    }
    for (int64_t s : *v) {
      if (s != 0 && s != 1) throw OpError("lut_signedness values must be 0 or 1, got " + ShapeString(*v));
    }
    lut_signedness_ = *v;
  }

  if (std::optional<TensorValue> index = attrs.Tensor("multiplier_index")) {
    if (index->type != ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8) {
      throw OpError(std::string("multiplier_index must be a uint8 tensor, got ") + TypeName(index->type));
    }
    if (index->shape.size() != 4) {
      throw OpError("multiplier_index must have the weight's rank-4 shape, got " + ShapeString(index->shape));
    }
    const uint8_t* data = index->data<uint8_t>();
    const uint8_t top = index->size() ? *std::max_element(data, data + index->size()) : 0;
    if (top >= multipliers_.size()) {
      throw OpError("multiplier_index refers to multiplier " + std::to_string(top) + ", but the node names " +
                    std::to_string(multipliers_.size()) + " multipliers");
    }
    index_ = std::move(index);
  }
}

void ROUPConvKernel::BuildLutRows() {
  // Error rows, one per (LUT, weight index v), indexed by the activation index u:
  //   row[v][u] = T[a][b] - a * b, with (a, b) = (u, v) when the weight is encoded and (v, u)
  // otherwise, each taken in its domain (signed: index - 128; unsigned: index).
  lut_rows_.resize(lut_tables_.size());
  lut_planes_.resize(lut_tables_.size());
  lut_fits_.resize(lut_tables_.size());
  lut_planes8_.resize(lut_tables_.size());
  for (size_t l = 0; l < lut_tables_.size(); ++l) {
    const int a_off = lut_signedness_[2 * l] ? 128 : 0, b_off = lut_signedness_[2 * l + 1] ? 128 : 0;
    const std::vector<int32_t>& table = lut_tables_[l];
    std::vector<int32_t>& rows = lut_rows_[l];
    rows.resize(kTableSize * kTableSize);
    for (int v = 0; v < kTableSize; ++v) {
      for (int u = 0; u < kTableSize; ++u) {
        const int a = encode_activation_ ? v : u, b = encode_activation_ ? u : v;
        const int64_t error = static_cast<int64_t>(table[a * kTableSize + b]) -
                              static_cast<int64_t>(a - a_off) * (b - b_off);
        if (error < std::numeric_limits<int32_t>::min() || error > std::numeric_limits<int32_t>::max()) {
          throw OpError("lut_tables entry " + std::to_string(l) + " holds products too large for int32");
        }
        rows[v * kTableSize + u] = static_cast<int32_t>(error);
      }
    }
    // The same rows as two byte planes where they fit int16 (GatherAdd looks bytes up in registers).
    std::vector<uint8_t>& planes = lut_planes_[l];
    planes.assign(kTableSize * 2 * kTableSize, 0);
    std::vector<char>& fits = lut_fits_[l];
    fits.assign(kTableSize, 3);  // bit 0: fits int16, bit 1: fits int8
    std::vector<uint8_t>& planes8 = lut_planes8_[l];
    planes8.assign(kTableSize * kTableSize, 0);
    for (int v = 0; v < kTableSize; ++v) {
      for (int u = 0; u < kTableSize; ++u) {
        const int32_t e = rows[v * kTableSize + u];
        if (e < std::numeric_limits<int16_t>::min() || e > std::numeric_limits<int16_t>::max()) fits[v] = 0;
        planes[(2 * v) * kTableSize + u] = static_cast<uint8_t>(e & 0xFF);
        planes[(2 * v + 1) * kTableSize + u] = static_cast<uint8_t>(((e >> 8) + 128) & 0xFF);
        if (e < -128 || e > 127) fits[v] &= ~2;
        planes8[v * kTableSize + u] = static_cast<uint8_t>((e + 128) & 0xFF);
      }
    }
  }
}

void ROUPConvKernel::CheckWeightShape(const std::vector<int64_t>& w_shape) const {
  if (w_shape.size() != 4) {
    throw OpError("supports 2-D convolution only: the weight must have rank 4, got shape " + ShapeString(w_shape));
  }
  if (std::any_of(w_shape.begin(), w_shape.end(), [](int64_t d) { return d < 1; })) {
    throw OpError("the weight has an empty dimension: " + ShapeString(w_shape));
  }
  if (!conv_.kernel_shape.empty() &&
      (conv_.kernel_shape[0] != w_shape[2] || conv_.kernel_shape[1] != w_shape[3])) {
    throw OpError("kernel_shape " + ShapeString(conv_.kernel_shape) + " does not match the weight " +
                  ShapeString(w_shape));
  }
  if (w_shape[0] % conv_.group) {
    throw OpError("the weight's " + std::to_string(w_shape[0]) + " output channels do not divide into group=" +
                  std::to_string(conv_.group));
  }
  if (index_ && index_->shape != w_shape) {
    throw OpError("multiplier_index has shape " + ShapeString(index_->shape) + ", the weight has " +
                  ShapeString(w_shape));
  }
}

// ---- the weight plan -----------------------------------------------------------------------

WeightPlan ROUPConvKernel::BuildPlan(const uint8_t* w, const std::vector<int64_t>& w_shape,
                                     const uint8_t* w_zero_point, size_t w_zero_point_size) const {
  WeightPlan plan;
  plan.M = w_shape[0];
  plan.Cg = w_shape[1];
  plan.KH = w_shape[2];
  plan.KW = w_shape[3];
  plan.K = plan.Cg * plan.KH * plan.KW;
  plan.Kp = RoundUp(plan.K, 2);
  plan.Kq = plan.KH * plan.KW * RoundUp(plan.Cg, kQuad);
  plan.group = conv_.group;
  plan.Mg = plan.M / plan.group;
  const int64_t M = plan.M, K = plan.K;
  const uint8_t* index = index_ ? index_->data<uint8_t>() : nullptr;

  // One GEMM per rounding width r (weight encoded) or per Booth digit j (activation encoded).
  const int slots = encode_activation_ ? kDigits : kBits + 1;
  std::vector<std::vector<int32_t>> dense(static_cast<size_t>(slots));
  const auto cell = [&](int slot, int64_t m, int64_t k) -> int32_t& {
    std::vector<int32_t>& d = dense[static_cast<size_t>(slot)];
    if (d.empty()) d.assign(static_cast<size_t>(M * K), 0);
    return d[static_cast<size_t>(m * K + k)];
  };

  plan.lut_taps.resize(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) {
    const int zw = w_zero_point[w_zero_point_size == 1 ? 0 : m] ^ w_flip_;  // its weight index
    for (int64_t k = 0; k < K; ++k) {
      const int v = w[m * K + k] ^ w_flip_;  // weight index
      const int b = v - zw;                  // zero-point-free weight, 9 bits signed
      const Multiplier& mult = multipliers_[index ? index[m * K + k] : 0];
      switch (mult.kind) {
        case MultiplierKind::kSkip:
          break;
        case MultiplierKind::kLut:
          // The exact product (x - zx)(w - zw) joins the exact group (it is the table's value
          // with SPEC's zero-point corrections applied); the gather adds the table's error.
          if (encode_activation_) {
            for (int j = 0; j < kDigits; ++j) cell(j, m, k) += b * (1 << WeightDigitExponent(j));
          } else {
            cell(0, m, k) += b;
          }
          plan.lut_taps[static_cast<size_t>(m)].push_back(
              {static_cast<int32_t>(k), lut_rows_[static_cast<size_t>(mult.lut)].data() + v * kTableSize,
               lut_fits_[static_cast<size_t>(mult.lut)][static_cast<size_t>(v)] & 1
                   ? lut_planes_[static_cast<size_t>(mult.lut)].data() + 2 * v * kTableSize
                   : nullptr,
               lut_fits_[static_cast<size_t>(mult.lut)][static_cast<size_t>(v)] & 2
                   ? lut_planes8_[static_cast<size_t>(mult.lut)].data() + v * kTableSize
                   : nullptr});
          break;
        case MultiplierKind::kRoup:
          for (int j = mult.perforation; j < kDigits; ++j) {
            if (encode_activation_) {
              const int rounded = RoundHalfUp(b, mult.width[j]);
              if (rounded) cell(j, m, k) += rounded * (1 << WeightDigitExponent(j));
            } else {
              const int d = BoothDigit(b, j);
              if (d) cell(mult.width[j], m, k) += d * (1 << (2 * j));
            }
          }
          break;
      }
    }
  }

  plan.lut_kind.resize(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) {
    const std::vector<LutTap>& taps = plan.lut_taps[static_cast<size_t>(m)];
    plan.lut_kind[static_cast<size_t>(m)] = GatherKind(taps.data(), taps.size());
  }

  // The accumulator's worst case: |GEMM operand| <= 256 (a rounded 9-bit activation) or
  // 2 * 2^shift (a Booth digit), times each decomposed weight, plus each LUT tap's largest error.
  plan.acc_bound.assign(static_cast<size_t>(M), 0);
  for (int slot = 0; slot < slots; ++slot) {
    const std::vector<int32_t>& d = dense[static_cast<size_t>(slot)];
    const int64_t operand = encode_activation_ ? int64_t{2} << (2 * slot - WeightDigitExponent(slot)) : 256;
    for (size_t i = 0; i < d.size(); ++i) plan.acc_bound[i / static_cast<size_t>(K)] += operand * std::abs(d[i]);
  }
  for (int64_t m = 0; m < M; ++m) {
    for (const LutTap& tap : plan.lut_taps[static_cast<size_t>(m)]) {
      int64_t worst = 0;
      for (int u = 0; u < kTableSize; ++u) worst = std::max<int64_t>(worst, std::abs(static_cast<int64_t>(tap.row[u])));
      plan.acc_bound[static_cast<size_t>(m)] += worst;
    }
  }

  if (plan.Cg == 1) {
    // Every output channel reads one input channel: the direct kernel, one term per slot.
    plan.direct = true;
    for (int slot = 0; slot < slots; ++slot) {
      std::vector<int32_t>& d = dense[static_cast<size_t>(slot)];
      if (d.empty() || std::all_of(d.begin(), d.end(), [](int32_t v) { return v == 0; })) continue;
      WeightPlan::Term term;
      term.transform.kind = encode_activation_ ? XTransform::Kind::kDigit : XTransform::Kind::kRound;
      term.transform.param = slot;
      if (encode_activation_) term.transform.shift = 2 * slot - WeightDigitExponent(slot);
      term.weights = std::move(d);
      plan.terms.push_back(std::move(term));
    }
    return plan;
  }

  for (int slot = 0; slot < slots; ++slot) {
    const std::vector<int32_t>& d = dense[static_cast<size_t>(slot)];
    if (d.empty()) continue;
    WeightPlan::Gemm gemm;
    gemm.transform.kind = encode_activation_ ? XTransform::Kind::kDigit : XTransform::Kind::kRound;
    gemm.transform.param = slot;
    if (encode_activation_) gemm.transform.shift = 2 * slot - WeightDigitExponent(slot);
    const size_t groups = static_cast<size_t>(plan.group);
    gemm.rows.resize(groups);
    gemm.weights.resize(groups);
    gemm.rows8.resize(groups);
    gemm.weights8.resize(groups);
    gemm.shift8.resize(groups);
    gemm.rowsum8.resize(groups);
    const int log_scale = U8LogScale(gemm.transform);
    const int max_pair = MaxPairSum(U8Bound(gemm.transform));
    bool any = false;
    for (int64_t g = 0; g < plan.group; ++g) {
      for (int64_t ml = 0; ml < plan.Mg; ++ml) {
        const int32_t* row = d.data() + (g * plan.Mg + ml) * K;
        if (std::all_of(row, row + K, [](int32_t v) { return v == 0; })) continue;
        any = true;
        // The u8 x s8 GEMM takes the row when it is 2^h times an int8 row (h: the common power
        // of two of its entries) whose pairs the selected kernel multiplies exactly.
        int h = 31;
        for (int64_t k = 0; k < K; ++k) {
          if (row[k]) h = std::min(h, __builtin_ctz(static_cast<unsigned>(row[k])));
        }
        // In the u8 GEMM's order k' = (i * KW + j) * Cq + c (Im2Col::Quads), zero-padded.
        const int64_t cq = plan.Kq / (plan.KH * plan.KW);
        std::vector<int32_t> reordered(static_cast<size_t>(plan.Kq), 0);
        for (int64_t k = 0; k < K; ++k) {
          const int64_t c = k / (plan.KH * plan.KW), tap = k % (plan.KH * plan.KW);
          reordered[static_cast<size_t>(tap * cq + c)] = row[k] / (1 << h);  // exact
        }
        bool fits = true;
        int32_t sum = 0;
        for (size_t k = 0; k < reordered.size() && fits; k += 2) {
          const int32_t v0 = reordered[k], v1 = reordered[k + 1];
          fits = v0 >= -128 && v0 <= 127 && v1 >= -128 && v1 <= 127 && std::abs(v0) + std::abs(v1) <= max_pair;
          sum += v0 + v1;
        }
        if (fits) {
          gemm.rows8[g].push_back(static_cast<int32_t>(ml));
          gemm.shift8[g].push_back(h + log_scale);
          gemm.rowsum8[g].push_back(sum);
          gemm.weights8[g].insert(gemm.weights8[g].end(), reordered.begin(), reordered.end());
          continue;
        }
        gemm.rows[g].push_back(static_cast<int32_t>(ml));
        std::vector<int16_t>& out = gemm.weights[g];
        for (int64_t k = 0; k < plan.Kp; ++k) {
          const int32_t v = k < K ? row[k] : 0;
          if (v < std::numeric_limits<int16_t>::min() || v > std::numeric_limits<int16_t>::max()) {
            throw OpError("internal: a decomposed weight does not fit int16");
          }
          out.push_back(static_cast<int16_t>(v));
        }
      }
    }
    if (any) plan.gemms.push_back(std::move(gemm));
  }
  return plan;
}

// ---- running ---------------------------------------------------------------------------------

std::vector<int64_t> ROUPConvKernel::OutputShape(const Inputs& in, Geometry* geometry) const {
  const int64_t H = in.x_shape[2], W = in.x_shape[3];
  const int64_t kernel[2] = {in.w_shape[2], in.w_shape[3]};
  const int64_t size[2] = {H, W};
  int64_t begin[2] = {conv_.pads[0], conv_.pads[1]}, end[2] = {conv_.pads[2], conv_.pads[3]};
  if (conv_.auto_pad == "VALID") {
    begin[0] = begin[1] = end[0] = end[1] = 0;
  } else if (conv_.auto_pad != "NOTSET") {
    for (int a = 0; a < 2; ++a) {
      const int64_t out = CeilDiv(size[a], conv_.strides[a]);
      const int64_t total = std::max<int64_t>(
          0, (out - 1) * conv_.strides[a] + conv_.dilations[a] * (kernel[a] - 1) + 1 - size[a]);
      const int64_t small = total / 2, large = total - total / 2;
      begin[a] = conv_.auto_pad == "SAME_UPPER" ? small : large;
      end[a] = conv_.auto_pad == "SAME_UPPER" ? large : small;
    }
  }
  int64_t out[2];
  for (int a = 0; a < 2; ++a) {
    const int64_t span = conv_.dilations[a] * (kernel[a] - 1) + 1;
    const int64_t padded = size[a] + begin[a] + end[a];
    if (padded < span) {
      throw OpError("the kernel does not fit the " + std::to_string(H) + "x" + std::to_string(W) + " input");
    }
    out[a] = (padded - span) / conv_.strides[a] + 1;
  }
  geometry->pad_top = begin[0];
  geometry->pad_left = begin[1];
  geometry->out_h = out[0];
  geometry->out_w = out[1];
  return {in.x_shape[0], in.w_shape[0], out[0], out[1]};
}

void ROUPConvKernel::Check(const Inputs& in) const {
  if (in.x_shape.size() != 4) {
    throw OpError("supports 2-D convolution only: x must be NCHW, got shape " + ShapeString(in.x_shape));
  }
  // Requantization divides by y_scale and multiplies by x_scale * w_scale: each must be a
  // positive finite number, as the oracle requires.
  const auto positive = [](float v) { return std::isfinite(v) && v > 0.0f; };
  if (!positive(in.x_scale) || !positive(in.y_scale) ||
      !std::all_of(in.w_scale, in.w_scale + in.w_scale_size, positive)) {
    throw OpError("x_scale, w_scale and y_scale must be positive finite numbers");
  }
  if (constant_plan_) {
    const WeightPlan& p = *constant_plan_;
    if (in.w_shape != std::vector<int64_t>{p.M, p.Cg, p.KH, p.KW}) {
      throw OpError("the weight changed shape after the session was created");
    }
  } else {
    CheckWeightShape(in.w_shape);
  }
  const int64_t M = in.w_shape[0];
  if (in.x_shape[1] != in.w_shape[1] * conv_.group) {
    throw OpError("x has " + std::to_string(in.x_shape[1]) + " channels, but the weight " +
                  ShapeString(in.w_shape) + " with group=" + std::to_string(conv_.group) + " needs " +
                  std::to_string(in.w_shape[1] * conv_.group));
  }
  const auto per_channel = [M](size_t n) { return n == 1 || n == static_cast<size_t>(M); };
  if (!per_channel(in.w_scale_size)) {
    throw OpError("w_scale must be a scalar or hold one value per output channel (" + std::to_string(M) +
                  "), got " + std::to_string(in.w_scale_size) + " values");
  }
  if (!per_channel(in.w_zero_point_size)) {
    throw OpError("w_zero_point must be a scalar or hold one value per output channel (" +
                  std::to_string(M) + "), got " + std::to_string(in.w_zero_point_size) + " values");
  }
  if (in.bias && in.bias_size != static_cast<size_t>(M)) {
    throw OpError("B must hold one value per output channel (" + std::to_string(M) + "), got " +
                  std::to_string(in.bias_size));
  }
}

void ROUPConvKernel::Run(OrtKernelContext* context, const Inputs& in,
                         const std::function<uint8_t*(const std::vector<int64_t>&)>& allocate) const {
  Check(in);
  Geometry geometry;
  const std::vector<int64_t> shape = OutputShape(in, &geometry);
  uint8_t* y = allocate(shape);
  if (shape[0] == 0 || shape[1] == 0) return;
  if (constant_plan_) {
    Execute(context, in, *constant_plan_, geometry, y);
  } else {
    if (in.w_zero_point_size != 1 && in.w_zero_point_size != static_cast<size_t>(in.w_shape[0])) {
      throw OpError("w_zero_point does not match the weight");
    }
    const WeightPlan plan = BuildPlan(in.w, in.w_shape, in.w_zero_point, in.w_zero_point_size);
    Execute(context, in, plan, geometry, y);
  }
}

namespace {

struct Job {
  const WeightPlan* plan;
  ScratchPool* pool;
  Im2Col im2col;
  const uint8_t* x;
  uint8_t* y;
  int64_t C, P, chunk, chunks;
  int64_t mblock = 0, mblocks = 1;  // implicit tasks: output channels per task (per conv group)
  uint8_t x_flip, x_pad;
  std::vector<int32_t> base;   // per m: the bias and the u8 GEMMs' offset terms
  std::vector<U8Operand> operands;  // per GEMM: its u8 activation operand for x's zero point
  std::vector<char> needs_quads, needs_rows;  // per conv group: u8 rows; int16 rows or LUT taps
  // Per conv group: the first GEMM with u8 rows (-1: none), which stores init[i] (the base of its
  // row i) plus its sums, and the rows it leaves out (filled with their base first).
  std::vector<int> first_gemm;
  std::vector<std::vector<int32_t>> init, fill_rows;
  std::vector<int32_t> packed_off;  // Im2Col::Quads's k-quad offsets: 64 q
  bool implicit = false;            // every row on the u8 GEMM: TaskImplicit
  int64_t out_h = 0;
  std::vector<float> scale;    // per m
  int y_zero_point, y_lo, y_hi;
  std::atomic<bool> failed{false};
  std::mutex mutex;
  std::string error;

  void Task(size_t task) {
    if (implicit) return TaskImplicit(task);
    const WeightPlan& p = *plan;
    const int64_t n = static_cast<int64_t>(task) / chunks, p0 = (static_cast<int64_t>(task) % chunks) * chunk;
    const int64_t p1 = std::min(P, p0 + chunk), cols = RoundUp(p1 - p0, kTile);
    std::unique_ptr<Scratch> lease = pool->Acquire();
    Scratch& scratch = *lease;
    scratch.index.resize(static_cast<size_t>(p.K * cols));
    scratch.packed.resize(static_cast<size_t>(p.Kp * cols));
    scratch.packed8.resize(static_cast<size_t>(p.Kq * cols));
    scratch.quads.resize(static_cast<size_t>(p.Kq * cols));
    scratch.acc.resize(static_cast<size_t>(p.Mg * cols));
    uint8_t* index = scratch.index.data();
    int32_t* acc = scratch.acc.data();
    for (int64_t g = 0; g < p.group; ++g) {
      const size_t gs = static_cast<size_t>(g);
      const uint8_t* xg = x + (n * C + g * p.Cg) * im2col.H * im2col.W;
      // The first u8 GEMM stores base + its sums; the rows it does not cover start at base.
      for (int32_t ml : fill_rows[gs]) std::fill_n(acc + ml * cols, cols, base[static_cast<size_t>(g * p.Mg + ml)]);
      // u8 x s8 rows: the activation indices packed once; a GEMM whose operand is not the index
      // itself maps them through its table.
      if (needs_quads[gs]) {
        im2col.Quads(xg, p.Cg, p0, p1, cols, x_flip, x_pad, scratch.quads.data(), scratch.band);
      }
      for (size_t gi = 0; gi < p.gemms.size(); ++gi) {
        const WeightPlan::Gemm& gemm = p.gemms[gi];
        const std::vector<int32_t>& rows8 = gemm.rows8[gs];
        if (rows8.empty()) continue;
        const uint8_t* packed = scratch.quads.data();
        if (!operands[gi].identity) {
          ApplyTable(operands[gi], packed, static_cast<size_t>(p.Kq * cols), scratch.packed8.data());
          packed = scratch.packed8.data();
        }
        GemmU8S8(gemm.weights8[gs].data(), static_cast<int>(rows8.size()), rows8.data(), gemm.shift8[gs].data(),
                 first_gemm[gs] == static_cast<int>(gi) ? init[gs].data() : nullptr, static_cast<int>(p.Kq),
                 packed, packed_off.data(), static_cast<size_t>(p.Kq) * kTile, static_cast<int>(cols), acc,
                 static_cast<size_t>(cols));
      }
      // int16 rows and LUT taps read the indices row by row.
      if (needs_rows[gs]) {
        im2col(xg, p.Cg, p0, p1, cols, x_flip, x_pad, index, scratch.band);
        for (const WeightPlan::Gemm& gemm : p.gemms) {
          const std::vector<int32_t>& rows = gemm.rows[gs];
          if (rows.empty()) continue;
          XTransform transform = gemm.transform;
          transform.zero = x_pad;
          PackColumns(index, static_cast<size_t>(cols), static_cast<int>(p.K), static_cast<int>(cols),
                      transform, scratch.packed.data());
          GemmS16(gemm.weights[gs].data(), static_cast<int>(rows.size()), rows.data(),
                  static_cast<int>(p.Kp), scratch.packed.data(), static_cast<int>(cols), acc,
                  static_cast<size_t>(cols));
        }
        for (int64_t ml = 0; ml < p.Mg; ++ml) {
          const std::vector<LutTap>& taps = p.lut_taps[static_cast<size_t>(g * p.Mg + ml)];
          if (!taps.empty()) {
            GatherAdd(taps.data(), taps.size(), p.lut_kind[static_cast<size_t>(g * p.Mg + ml)], index,
                      static_cast<size_t>(cols), static_cast<int>(cols), acc + ml * cols);
          }
        }
      }
      for (int64_t ml = 0; ml < p.Mg; ++ml) {
        const int64_t m = g * p.Mg + ml;
        Requantize(acc + ml * cols, static_cast<int>(p1 - p0), scale[static_cast<size_t>(m)], y_zero_point,
                   y_lo, y_hi, y + (n * p.M + m) * P + p0);
      }
    }
    pool->Release(std::move(lease));
  }

  // Every row of the plan on the u8 GEMM: tasks of whole output rows whose GEMMs read the band
  // in place (Im2Col::Band); the accumulators hold virtual output rows of wv pixels.
  void TaskImplicit(size_t task) {
    const WeightPlan& p = *plan;
    const int64_t per_image = chunks * mblocks;
    const int64_t n = static_cast<int64_t>(task) / per_image;
    const int64_t oh0 = (static_cast<int64_t>(task) % per_image) / mblocks * chunk;
    // This task's output channels (local to each conv group): [m0, m1).
    const int64_t m0 = (static_cast<int64_t>(task) % mblocks) * mblock, m1 = std::min(p.Mg, m0 + mblock);
    const int64_t nrows_out = std::min(out_h - oh0, chunk);
    const Im2Col::BandShape shape = im2col.Shape(p.Cg, nrows_out);
    const int64_t cols = RoundUp(nrows_out * shape.wv, kTile);
    std::unique_ptr<Scratch> lease = pool->Acquire();
    Scratch& scratch = *lease;
    scratch.quads.resize(static_cast<size_t>(shape.words * kQuad));
    scratch.acc.resize(static_cast<size_t>((m1 - m0) * cols));
    im2col.QuadOffsets(shape, scratch.quad_off);
    int32_t* acc = scratch.acc.data();  // row ml - m0
    const int64_t out_w = im2col.out_w;
    for (int64_t g = 0; g < p.group; ++g) {
      const size_t gs = static_cast<size_t>(g);
      const uint8_t* xg = x + (n * C + g * p.Cg) * im2col.H * im2col.W;
      for (int32_t ml : fill_rows[gs]) {
        if (ml >= m0 && ml < m1) std::fill_n(acc + (ml - m0) * cols, cols, base[static_cast<size_t>(g * p.Mg + ml)]);
      }
      if (needs_quads[gs]) {
        im2col.Band(xg, p.Cg, oh0, nrows_out, x_flip, x_pad, shape, scratch.quads.data(), scratch.band);
      }
      for (size_t gi = 0; gi < p.gemms.size(); ++gi) {
        const WeightPlan::Gemm& gemm = p.gemms[gi];
        const std::vector<int32_t>& rows8 = gemm.rows8[gs];
        // rows8 is ascending: this task's rows are one run of it.
        const size_t i0 = static_cast<size_t>(std::lower_bound(rows8.begin(), rows8.end(), m0) - rows8.begin());
        const size_t i1 = static_cast<size_t>(std::lower_bound(rows8.begin(), rows8.end(), m1) - rows8.begin());
        if (i0 == i1) continue;
        scratch.row_of.resize(i1 - i0);
        for (size_t i = i0; i < i1; ++i) scratch.row_of[i - i0] = rows8[i] - static_cast<int32_t>(m0);
        const uint8_t* b = scratch.quads.data();
        if (!operands[gi].identity) {
          scratch.packed8.resize(scratch.quads.size());
          ApplyTable(operands[gi], b, scratch.quads.size(), scratch.packed8.data());
          b = scratch.packed8.data();
        }
        GemmU8S8(gemm.weights8[gs].data() + i0 * static_cast<size_t>(p.Kq), static_cast<int>(i1 - i0),
                 scratch.row_of.data(), gemm.shift8[gs].data() + i0,
                 first_gemm[gs] == static_cast<int>(gi) ? init[gs].data() + i0 : nullptr, static_cast<int>(p.Kq), b,
                 scratch.quad_off.data(), kTile * kQuad, static_cast<int>(cols), acc, static_cast<size_t>(cols));
      }
      for (int64_t ml = m0; ml < m1; ++ml) {
        const int64_t m = g * p.Mg + ml;
        RequantizeRows(acc + (ml - m0) * cols, static_cast<size_t>(shape.wv), static_cast<int>(nrows_out),
                       static_cast<int>(out_w), scale[static_cast<size_t>(m)], y_zero_point, y_lo, y_hi,
                       y + (n * p.M + m) * P + oh0 * out_w, static_cast<size_t>(out_w));
      }
    }
    pool->Release(std::move(lease));
  }

  static void Run(void* self, size_t task) {
    Job* job = static_cast<Job*>(self);
    if (job->failed.load(std::memory_order_relaxed)) return;
    try {
      job->Task(task);
    } catch (const std::exception& e) {  // never let an exception into onnxruntime's thread pool
      std::lock_guard<std::mutex> lock(job->mutex);
      if (!job->failed.exchange(true)) job->error = e.what();
    }
  }
};

}  // namespace

void ROUPConvKernel::Execute(OrtKernelContext* context, const Inputs& in, const WeightPlan& plan,
                             const Geometry& geometry, uint8_t* y) const {
  const int64_t N = in.x_shape[0], M = plan.M, P = geometry.out_h * geometry.out_w;
  Job job;
  job.plan = &plan;
  job.pool = &pool_;
  job.im2col = Im2Col{in.x_shape[2], in.x_shape[3], plan.KH, plan.KW,
                      conv_.strides[0], conv_.strides[1], conv_.dilations[0], conv_.dilations[1],
                      geometry.pad_top, geometry.pad_left, geometry.out_w};
  job.x = in.x;
  job.y = y;
  job.C = in.x_shape[1];
  job.P = P;
  job.x_flip = x_flip_;
  job.x_pad = in.x_zero_point ^ x_flip_;  // padding holds x's zero point: operand a = 0

  // acc = GEMMs + gathers + B[m]: the operands are zero-point-free, so no correction terms.
  job.base.resize(static_cast<size_t>(M));
  job.scale.resize(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) {
    const size_t i = static_cast<size_t>(m);
    job.base[i] = in.bias ? in.bias[m] : 0;
    // int32 accumulation, as QLinearConv's: refuse a channel whose worst case could wrap.
    if (plan.acc_bound[i] + std::abs(static_cast<int64_t>(job.base[i])) > std::numeric_limits<int32_t>::max()) {
      throw OpError("the int32 accumulator of output channel " + std::to_string(m) +
                    " can overflow (worst case " +
                    std::to_string(plan.acc_bound[i] + std::abs(static_cast<int64_t>(job.base[i]))) +
                    "); reduce the bias or split the layer");
    }
    const float w_scale = in.w_scale[in.w_scale_size == 1 ? 0 : m];
    const float product = in.x_scale * w_scale;  // float32, as onnxruntime computes it
    job.scale[i] = product / in.y_scale;
  }
  if (plan.direct) return ExecuteDirect(context, in, plan, geometry, job.base, job.scale, y);
  // u8 GEMM rows: sum_k W[k] T(a_k) = 2^shift * (dot(W', U) + o * sum_k W'[k]) (gemm_u8.h);
  // the second term is a constant of the row.
  for (const WeightPlan::Gemm& gemm : plan.gemms) {
    XTransform transform = gemm.transform;
    transform.zero = job.x_pad;
    job.operands.push_back(MakeU8Operand(transform));
    const int offset = job.operands.back().offset;
    for (int64_t g = 0; g < plan.group; ++g) {
      const size_t gs = static_cast<size_t>(g);
      for (size_t i = 0; i < gemm.rows8[gs].size(); ++i) {
        const size_t m = static_cast<size_t>(g * plan.Mg + gemm.rows8[gs][i]);
        const uint32_t term = static_cast<uint32_t>(offset * gemm.rowsum8[gs][i]) << gemm.shift8[gs][i];
        job.base[m] = static_cast<int32_t>(static_cast<uint32_t>(job.base[m]) + term);
      }
    }
  }
  job.needs_quads.assign(static_cast<size_t>(plan.group), 0);
  job.needs_rows.assign(static_cast<size_t>(plan.group), 0);
  for (int64_t g = 0; g < plan.group; ++g) {
    const size_t gs = static_cast<size_t>(g);
    for (const WeightPlan::Gemm& gemm : plan.gemms) {
      job.needs_quads[gs] |= !gemm.rows8[gs].empty();
      job.needs_rows[gs] |= !gemm.rows[gs].empty();
    }
    for (int64_t ml = 0; ml < plan.Mg; ++ml) job.needs_rows[gs] |= !plan.lut_taps[static_cast<size_t>(g * plan.Mg + ml)].empty();
  }
  job.y_zero_point = in.y_zero_point;
  job.y_lo = IsSigned(y_type_) ? -128 : 0;
  job.y_hi = IsSigned(y_type_) ? 127 : 255;

  // The first u8 GEMM of each group initializes the accumulators of its rows.
  job.first_gemm.assign(static_cast<size_t>(plan.group), -1);
  job.init.resize(static_cast<size_t>(plan.group));
  job.fill_rows.resize(static_cast<size_t>(plan.group));
  bool implicit = true;
  for (int64_t g = 0; g < plan.group; ++g) {
    const size_t gs = static_cast<size_t>(g);
    implicit = implicit && !job.needs_rows[gs];
    std::vector<char> covered(static_cast<size_t>(plan.Mg), 0);
    for (size_t gi = 0; gi < plan.gemms.size(); ++gi) {
      const std::vector<int32_t>& rows8 = plan.gemms[gi].rows8[gs];
      if (rows8.empty()) continue;
      job.first_gemm[gs] = static_cast<int>(gi);
      for (int32_t ml : rows8) {
        covered[static_cast<size_t>(ml)] = 1;
        job.init[gs].push_back(job.base[static_cast<size_t>(g * plan.Mg + ml)]);
      }
      break;
    }
    for (int64_t ml = 0; ml < plan.Mg; ++ml) {
      if (!covered[static_cast<size_t>(ml)]) job.fill_rows[gs].push_back(static_cast<int32_t>(ml));
    }
  }
  job.implicit = implicit;
  job.out_h = geometry.out_h;

  int64_t chunk = 0;
  if (implicit) {
    // Tasks: (image, run of output rows), each row wv virtual pixels; the band and the
    // accumulators sized to stay in the L2 cache.
    const int64_t cq = plan.Kq / (plan.KH * plan.KW);
    const int64_t wv = geometry.out_w + ((plan.KW - 1) * conv_.dilations[1]) / conv_.strides[1];
    const int64_t bytes_per_column = 4 * plan.Mg + 8 * cq * conv_.strides[0] * conv_.strides[1];
    const int64_t target = std::clamp<int64_t>(192 * 1024 / bytes_per_column, 4 * kTile, 4096);
    chunk = std::clamp<int64_t>(target / wv, 1, geometry.out_h);
    chunk = CeilDiv(geometry.out_h, CeilDiv(geometry.out_h, chunk));  // balanced runs
    // At least 8 tasks where the layer allows: split the pixels while a task keeps 256 virtual
    // pixels or more, then the output channels (blocks of >= 32, the packed weights of a block
    // reused over all of the task's pixels), then the pixels again.
    int64_t mblock = plan.Mg;
    const auto count = [&] { return N * CeilDiv(geometry.out_h, chunk) * CeilDiv(plan.Mg, mblock); };
    while (count() < 8) {
      if (chunk > 1 && chunk * wv > 256) {
        chunk = CeilDiv(chunk, 2);
      } else if (mblock >= 64) {
        mblock = RoundUp(CeilDiv(mblock, 2), 16);
      } else if (chunk > 1) {
        chunk = CeilDiv(chunk, 2);
      } else {
        break;
      }
    }
    job.chunk = chunk;
    job.chunks = CeilDiv(geometry.out_h, chunk);
    job.mblock = mblock;
    job.mblocks = CeilDiv(plan.Mg, mblock);
  } else {
    // Tasks: (image, run of output pixels). A run's scratch (activation indices, packed operands,
    // accumulators) is sized to stay in the L2 cache.
    const int64_t bytes_per_column = plan.K + 2 * plan.Kp + plan.Kq + 4 * plan.Mg;
    chunk = std::clamp<int64_t>((192 * 1024 / bytes_per_column) / kTile * kTile, kTile, 4096);
    chunk = std::min(chunk, RoundUp(P, kTile));
    while (N * CeilDiv(P, chunk) < 8 && chunk > 4 * kTile) chunk = RoundUp(chunk / 2, kTile);
    job.chunk = chunk;
    job.chunks = CeilDiv(P, chunk);
    for (int64_t q = 0; q < plan.Kq / kQuad; ++q) job.packed_off.push_back(static_cast<int32_t>(q * kTile * kQuad));
  }
  const size_t tasks = static_cast<size_t>(N * job.chunks * job.mblocks);

  if (tasks == 1) {
    Job::Run(&job, 0);
  } else {
    Ort::ThrowOnError(api_.KernelContext_ParallelFor(context, &Job::Run, tasks, 0, &job));
  }
  if (job.failed) throw OpError(job.error);
}

namespace {

// The direct kernel's tasks: (image, run of units), a unit one input channel (conv group) and up
// to kUnitRows of its output channels.
struct DirectJob {
  const WeightPlan* plan;
  ScratchPool* pool;
  DepthwiseGeometry geometry;
  const uint8_t* x;
  uint8_t* y;
  int64_t C, P, units_per_image, unit_rows, mblocks, per_task, tasks_per_image;
  uint8_t x_flip, x_pad;
  const int32_t* base;
  const float* scale;
  std::vector<XTransform> transforms;  // per term, for x's zero point
  int y_zero_point, y_lo, y_hi;
  std::atomic<bool> failed{false};
  std::mutex mutex;
  std::string error;

  void Task(size_t task) {
    const WeightPlan& p = *plan;
    const int64_t n = static_cast<int64_t>(task) / tasks_per_image;
    const int64_t u0 = (static_cast<int64_t>(task) % tasks_per_image) * per_task;
    const int64_t u1 = std::min(units_per_image, u0 + per_task);
    std::unique_ptr<Scratch> lease = pool->Acquire();
    const size_t nterms = p.terms.size();
    std::vector<const int32_t*> weights_of(nterms);
    std::vector<uint8_t*> outs(static_cast<size_t>(unit_rows));
    const int64_t KK = p.KH * p.KW;
    for (int64_t unit = u0; unit < u1; ++unit) {
      const int64_t g = unit / mblocks, m0 = g * p.Mg + (unit % mblocks) * unit_rows;
      const int64_t count = std::min(unit_rows, (g + 1) * p.Mg - m0);
      for (size_t t = 0; t < nterms; ++t) weights_of[t] = p.terms[t].weights.data() + m0 * KK;
      for (int64_t i = 0; i < count; ++i) outs[static_cast<size_t>(i)] = y + (n * p.M + m0 + i) * P;
      DepthwiseChannels ch{transforms.data(), weights_of.data(), static_cast<int>(nterms),
                           p.lut_taps.data() + m0, base + m0, scale + m0, y_zero_point, y_lo, y_hi,
                           outs.data(), static_cast<int>(count)};
      DepthwiseRun(geometry, x + (n * C + g) * geometry.H * geometry.W, x_flip, x_pad, ch, lease->direct);
    }
    pool->Release(std::move(lease));
  }

  static void Run(void* self, size_t task) {
    DirectJob* job = static_cast<DirectJob*>(self);
    if (job->failed.load(std::memory_order_relaxed)) return;
    try {
      job->Task(task);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(job->mutex);
      if (!job->failed.exchange(true)) job->error = e.what();
    }
  }
};

}  // namespace

void ROUPConvKernel::ExecuteDirect(OrtKernelContext* context, const Inputs& in, const WeightPlan& plan,
                                   const Geometry& geometry, const std::vector<int32_t>& base,
                                   const std::vector<float>& scale, uint8_t* y) const {
  const int64_t N = in.x_shape[0], P = geometry.out_h * geometry.out_w;
  DirectJob job;
  job.plan = &plan;
  job.pool = &pool_;
  job.geometry = DepthwiseGeometry{in.x_shape[2], in.x_shape[3], plan.KH, plan.KW,
                                   conv_.strides[0], conv_.strides[1], conv_.dilations[0], conv_.dilations[1],
                                   geometry.pad_top, geometry.pad_left, geometry.out_h, geometry.out_w};
  job.x = in.x;
  job.y = y;
  job.C = in.x_shape[1];
  job.P = P;
  job.x_flip = x_flip_;
  job.x_pad = in.x_zero_point ^ x_flip_;
  job.base = base.data();
  job.scale = scale.data();
  for (const WeightPlan::Term& term : plan.terms) {
    job.transforms.push_back(term.transform);
    job.transforms.back().zero = job.x_pad;
  }
  job.y_zero_point = in.y_zero_point;
  job.y_lo = IsSigned(y_type_) ? -128 : 0;
  job.y_hi = IsSigned(y_type_) ? 127 : 255;
  // Units of up to 64 output channels; tasks of enough units for ~64K multiply-accumulates
  // each, and at least 16 tasks when the batch allows.
  job.unit_rows = std::min<int64_t>(plan.Mg, 64);
  job.mblocks = CeilDiv(plan.Mg, job.unit_rows);
  job.units_per_image = plan.group * job.mblocks;
  const int64_t unit_work = std::max<int64_t>(1, job.unit_rows * P * plan.KH * plan.KW);
  int64_t per = std::max<int64_t>(1, (int64_t{1} << 16) / unit_work);
  while (per > 1 && N * CeilDiv(job.units_per_image, per) < 16) per = CeilDiv(per, 2);
  job.per_task = per;
  job.tasks_per_image = CeilDiv(job.units_per_image, per);
  const size_t tasks = static_cast<size_t>(N * job.tasks_per_image);
  if (tasks == 1) {
    DirectJob::Run(&job, 0);
  } else {
    Ort::ThrowOnError(api_.KernelContext_ParallelFor(context, &DirectJob::Run, tasks, 0, &job));
  }
  if (job.failed) throw OpError(job.error);
}

}  // namespace axonnx::roupconv
