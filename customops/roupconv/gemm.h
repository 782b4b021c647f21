// The integer inner loops of ROUPConv: an exact int16 x int16 -> int32 GEMM and a gather that adds
// per-weight error-table rows (LUT multipliers); requantization is in requantize.h. Each has an
// AVX2 version, chosen at run time, and a portable one; both give the same integers.
#pragma once

#include "roupconv/requantize.h"

#include <cstddef>
#include <cstdint>

namespace axonnx::roupconv {

// Columns (output pixels) are handled in tiles of this many.
constexpr int kTile = 16;

// What one GEMM multiplies the activations by: the zero-point-free a = u - zero (u the
// activation index, zero the index of x's zero point) rounded at bit r (weight encoded), or
// Booth digit j of a times 2^shift (activation encoded; the shift keeps the weight side of the
// top digit within int16).
struct XTransform {
  enum class Kind { kRound, kDigit } kind = Kind::kRound;
  int param = 0;  // r or j
  int shift = 0;
  int zero = 0;
  int16_t Apply(int u) const;
};

// The activation operand of one GEMM, packed for it: for tile t (columns 16t..16t+15), k-pair q,
// column c and e in {0, 1}, element ((t * kpairs + q) * 16 + c) * 2 + e holds
// transform(index[(2q + e) * ld + 16t + c]) (0 past the last row). `cols` is a multiple of 16.
void PackColumns(const uint8_t* index, size_t ld, int rows, int cols, const XTransform& transform,
                 int16_t* packed);

// acc[row_of[i] * ld_acc + c] += sum_k weights[i * kp + k] * column k of `packed`, for the
// i < nrows given rows and every column c < cols. kp is even: kp / 2 k-pairs.
void GemmS16(const int16_t* weights, int nrows, const int32_t* row_of, int kp,
             const int16_t* packed, int cols, int32_t* acc, size_t ld_acc);

// acc[c] += row_k[index[k * ld + c]] for each tap (k, row_k) and every column c < cols.
struct LutTap {
  int32_t k;
  const int32_t* row;      // 256 entries
  const uint8_t* planes;   // the row as bytes: 256 low bytes, 256 (high byte + 128); nullptr
                           // when the row does not fit int16
  const uint8_t* plane8;   // the row + 128 as 256 bytes; nullptr when it does not fit int8
};
// `kind` is GatherKind(taps, ntaps), computed once per tap list: the loop its rows allow.
int GatherKind(const LutTap* taps, size_t ntaps);
void GatherAdd(const LutTap* taps, size_t ntaps, int kind, const uint8_t* index, size_t ld, int cols,
               int32_t* acc);

bool UsingAvx2();

}  // namespace axonnx::roupconv
