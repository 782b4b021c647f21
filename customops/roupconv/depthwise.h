// ROUPConv's direct kernel for convolutions whose every output channel reads one input channel
// (weight [M, 1, KH, KW]: depthwise, with or without a channel multiplier), for every plan kind.
//
// The plan's terms are the GEMM slots of the fast path (SPEC.md "A fast, exact kernel"): term t
// multiplies T_t(u) (the rounded zero-point-free activation, or one of its Booth digits times a
// power of two) by its decomposed weight W_t[m][i * KW + j]; LUT taps add their error rows. Here
// each term is one int16 plane per input channel (split into stride phases along the width, so
// that every tap reads a contiguous run), and every output pixel sums KH * KW products per term
// in int32: no im2col, no GEMM with K = KH * KW, no channel padding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "roupconv/gemm.h"

namespace axonnx::roupconv {

struct DepthwiseGeometry {
  int64_t H, W, KH, KW, SH, SW, DH, DW, pad_top, pad_left, out_h, out_w;
};

// One output channel's taps over all terms: an offset into the planes and its weight; and two
// taps whose offsets differ by one as one vpmaddwd operand, w = w0 (low 16 bits, the tap at off)
// | w1 << 16 (the tap at off + 1; 0 for a lone tap).
struct DepthwiseTap {
  int64_t off;
  int32_t w;
};
struct DepthwisePair {
  int64_t off;
  int32_t w;
};

// Per-task buffers, grown as needed.
struct DepthwiseScratch {
  std::vector<DepthwiseTap> taps;
  std::vector<DepthwisePair> pairs;
  std::vector<int64_t> tap_off, order;  // per tap: its offset in a term's planes; offset order
  DepthwiseGeometry geometry{};          // ... for this geometry
  bool prepared = false;
  std::vector<int16_t> planes;  // per term: SW phases x rows x wv
  std::vector<uint8_t> index;   // the activation indices, same layout
  std::vector<uint8_t> row;     // one padded input row
  std::vector<int32_t> acc;     // out_h * out_w
};

// One input channel `xc` (H * W stored bytes) and the output channels it feeds:
//   y_m = requantize(base[m] + sum_t sum_tap W_t[m][tap] T_t(u) + sum_tap lut error, scale[m])
// for the `count` channels whose decomposed weights are weights[t] + m * KH * KW (m = 0..count-1,
// relative), LUT taps taps[m] (k = i * KW + j), and outputs y[m] (out_h * out_w bytes each).
// T_t(u) = transforms[t].Apply(u) for the activation index u; `pad` is the index of x's zero point and
// `flip` turns a stored byte into its index.
struct DepthwiseChannels {
  const XTransform* transforms;  // [nterms], zero set to x's zero point's index
  const int32_t* const* weights; // [nterms] -> [count][KH * KW]
  int nterms;
  const std::vector<LutTap>* taps;  // [count] (nullptr: none)
  const int32_t* base;              // [count]
  const float* scale;               // [count]
  int zero_point, lo, hi;
  uint8_t* const* y;                // [count]
  int count;
};
void DepthwiseRun(const DepthwiseGeometry& g, const uint8_t* xc, uint8_t flip, uint8_t pad,
                  const DepthwiseChannels& ch, DepthwiseScratch& scratch);

}  // namespace axonnx::roupconv
