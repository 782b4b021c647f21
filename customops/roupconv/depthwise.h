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

// ---- Channel blocks (AVX2 / AVX-512): 16 output channels at once ------------------------------
// Per-channel work vectorized along pixels is mostly overhead when a plane is 7x7; here a block's
// 16 output channels are the vector lanes. Each term's operand is laid out channel-interleaved
// over the padded input ([row][column][16 channels], one 32-bit word per channel holding
// (T_t(u at column c), T_t(u at column c + DW)), zero-padded since T_t of x's zero point is 0),
// so that one vpmaddwd / vpdpwssd does taps (i, 2k) and (i, 2k + 1) for 16 channels, and the
// accumulators of a few output pixels stay in registers. Plans with LUT taps use the per-channel
// kernel below.
constexpr int kDepthwiseLanes = 16;

// One (term, kernel row i, column pair k) of a block and its 16 lane words
// w[i][2k] & 0xFFFF | w[i][2k + 1] << 16 (0 past the kernel's width and past the block's channels).
struct DepthwiseOp {
  int32_t term, i, k;
};
// Weights packed once per plan, block b's ops at [op_begin[b], op_begin[b + 1]) (all-zero ops
// left out); ok is false when the plan has LUT taps or a weight beyond int16.
struct DepthwisePacked {
  bool ok = false;
  std::vector<int32_t> op_begin;
  std::vector<DepthwiseOp> ops;
  std::vector<int32_t> words;  // [ops][16]
};
DepthwisePacked PackDepthwise(const int32_t* const* weights, int nterms, int64_t M, int64_t KH, int64_t KW);

// Per-run constants of the block kernel.
struct DepthwiseBlockArgs {
  DepthwiseGeometry g;
  const DepthwisePacked* packed;
  const XTransform* transforms;  // [nterms], zero set to x's zero point's index
  int nterms;
  uint8_t flip, pad;
  const int32_t* base;  // [M]
  const float* scale;   // [M]
  int zero_point, lo, hi;
  const uint8_t* x;     // [N, C, H, W]; output channel m reads input channel m / Mg
  uint8_t* y;           // [N, M, out_h, out_w]
  int64_t C, M, Mg;
};

struct DepthwiseScratch;
// Whether this CPU runs the block kernel (AVX2 or better, and not AXONNX_NO_AVX2).
bool DepthwiseBlocksAvailable();
// Image n's output channel blocks [b0, b1) (16 channels each, the last one what is left of M)
// for output rows [oh0, oh1).
void DepthwiseBlockRun(const DepthwiseBlockArgs& a, int64_t n, int64_t b0, int64_t b1, int64_t oh0, int64_t oh1,
                       DepthwiseScratch& s);

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
  // Block kernel: the band's activation indices [row][column][16], each term's operand pairs
  // (64-byte lines, so that every load is aligned), the outputs [pixel][16].
  struct alignas(64) Line {
    int32_t v[kDepthwiseLanes];
  };
  std::vector<uint8_t> block_index, block_out;
  std::vector<Line> block_planes;
  std::vector<int64_t> block_off;
  std::vector<int32_t> block_dest;  // per input pixel of the band: its byte offset in block_index
};

// One input channel `xc` (H * W stored bytes) and the output channels it feeds:
//   y_m = requantize(base[m] + sum_t sum_tap W_t[m][tap] T_t(u) + sum_tap lut error, scale[m])
// for the `count` channels whose decomposed weights are weights[t] + m * KH * KW (m = 0..count-1,
// relative), LUT taps those of channel lut_m0 + m in luts (k = i * KW + j), and outputs y[m] (out_h * out_w bytes each).
// T_t(u) = transforms[t].Apply(u) for the activation index u; `pad` is the index of x's zero point and
// `flip` turns a stored byte into its index.
struct DepthwiseChannels {
  const XTransform* transforms;  // [nterms], zero set to x's zero point's index
  const int32_t* const* weights; // [nterms] -> [count][KH * KW]
  int nterms;
  const LutTaps* luts;              // nullptr: none
  int64_t lut_m0;                   // the first channel's index in luts
  const int32_t* base;              // [count]
  const float* scale;               // [count]
  int zero_point, lo, hi;
  uint8_t* const* y;                // [count]
  int count;
};
void DepthwiseRun(const DepthwiseGeometry& g, const uint8_t* xc, uint8_t flip, uint8_t pad,
                  const DepthwiseChannels& ch, DepthwiseScratch& scratch);

}  // namespace axonnx::roupconv
