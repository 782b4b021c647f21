// The u8 x s8 GEMM of ROUPConv's fast path (SPEC.md "A fast, exact kernel").
//
// A GEMM operand T(a) of the zero-point-free activation a = u - zero (rounded at bit r, or a
// Booth digit times 2^shift) is s * (U(u) + o): s = 2^log_scale, o an integer that depends on the
// zero point, U(u) in [0, 255]. A weight row W that is 2^h times an int8 row W' then gives
//   sum_k W[k] T(a_k) = 2^(log_scale + h) * (sum_k W'[k] U(u_k) + o * sum_k W'[k]),
// an exact u8 x s8 dot product (vpdpbusd on AVX-512 VNNI; vpmaddubsw + vpmaddwd on AVX2, which
// saturates pairs to int16, so those rows must keep qmax * (|w'0| + |w'1|) < 2^15) plus a
// constant per row that joins the bias. Rows that do not fit stay on the int16 GEMM (gemm.h).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "roupconv/gemm.h"

namespace axonnx::roupconv {

// k values per 32-bit lane of the packed activations.
constexpr int kQuad = 4;

// The u8 form of one GEMM's activation operand, for one zero point.
struct U8Operand {
  std::array<uint8_t, 256> table{};  // U(u)
  bool identity = false;             // U(u) = u: packing is a plain interleave
  int offset = 0;                    // o
  int log_scale = 0;
};

// The exponent of s, and a bound on U for every zero point: fixed when the plan is built.
int U8LogScale(const XTransform& transform);
int U8Bound(const XTransform& transform);
// Builds U for transform.zero. Throws OpError if U leaves [0, U8Bound] (never, by construction).
U8Operand MakeU8Operand(const XTransform& transform);

// The largest |w0| + |w1| over adjacent k (an even k and the next) that the selected kernel
// multiplies exactly by activations up to `bound`: unlimited except on the AVX2 kernel.
int MaxPairSum(int bound);

// The activation operand of GemmU8S8: for k-quad q, tile t (columns 16t..16t+15), column c and
// e < 4, byte t * tile_stride + quad_off[q] + 4 * c + e holds U(u) for the activation index u at
// k = 4q + e of column 16t + c. Packed (Im2Col::Quads): quad_off[q] = 64 q, tile_stride = 64 *
// kquads. Read straight from an interleaved input band (implicit im2col): tile_stride = 64 and
// quad_off[q] the offset of tap q in the band. ApplyTable maps n indices u to U(u) (per byte).
void ApplyTable(const U8Operand& op, const uint8_t* in, size_t n, uint8_t* out);

// For the i < nrows given rows and every column c < cols, with s = sum_k weights[i * kq + k] *
// operand column c, row k:
//   acc[row_of[i] * ld_acc + c] = init[i] + (s << shift[i])   when init is given,
//   acc[row_of[i] * ld_acc + c] += s << shift[i]               otherwise (modulo 2^32).
// kq is a multiple of 4.
void GemmU8S8(const int8_t* weights, int nrows, const int32_t* row_of, const int32_t* shift,
              const int32_t* init, int kq, const uint8_t* b, const int32_t* quad_off,
              size_t tile_stride, int cols, int32_t* acc, size_t ld_acc);

}  // namespace axonnx::roupconv
