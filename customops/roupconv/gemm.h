// The integer inner loops of ROUPConv: an exact int16 x int16 -> int32 GEMM and a gather that adds
// per-weight error-table rows (LUT multipliers); requantization is in requantize.h. Each has an
// AVX2 version, chosen at run time, and a portable one; both give the same integers.
#pragma once

#include "roupconv/requantize.h"

#include <cstddef>
#include <cstdint>
#include <vector>

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

// LUT error rows: row r (a LUT's ordinal * 256 + the weight index) maps the activation index u to
// the error T[a][b] - a*b. rows32 holds every row; planes16 (two byte planes: the low bytes, the
// high bytes + 128, 512 bytes a row) holds the rows that fit int16 (other rows' bytes there are
// meaningless: `fits` says which), 64-byte aligned. planes8 holds each row that fits int8 as bytes
// (the row + 128) over one period: 64, 128 or 256 bytes (lines8[r] 64-byte lines, 0: no int8 row)
// from line at8[r]; a periodic row is looked up with fewer instructions and less cache.
struct LutTables {
  const int32_t* rows32 = nullptr;    // [R][256]
  const uint8_t* planes16 = nullptr;  // [R][512]
  const uint8_t* planes8 = nullptr;   // lines of 64 bytes
  const int32_t* at8 = nullptr;       // [R]
  const uint8_t* lines8 = nullptr;    // [R]: 1, 2, 4 or 0
  const uint8_t* fits = nullptr;      // [R]: bit 0: the row fits int16, bit 1: int8
};

// The LUT positions of a plan's output channels: tap i is (k[i], row[i]), and output channel m's
// taps are [start[m], start[m + 1]). slice[m * (slices + 1) + s] is m's first tap with
// k >= kLutSlice * s: the error kernels run slice by slice over a block of channels, so that the
// slice's activation rows stay in cache, and each slice's byte sums fit uint16. Within a slice
// the taps ascend by k, except in channels of kind 2, whose taps are grouped by their rows'
// lines8 (1, 2, then 4; split[(m * slices + s) * 2 + j] is the first tap of the group after j),
// each group by ascending k. at[i] is the tap's row in 64-byte lines of planes8 (kind 2) or
// planes16 (kind 1).
constexpr int kLutSlice = 256;
struct LutTaps {
  LutTables tables;
  std::vector<int64_t> start;
  std::vector<int32_t> k, row, at;
  std::vector<int64_t> slice, split;
  int64_t slices = 0;
  std::vector<int8_t> kind;  // per m: the loop its rows allow (2: all int8, 1: all int16, 0: other)
  bool any() const { return !k.empty(); }
  bool any(int64_t m0, int64_t m1) const { return start[static_cast<size_t>(m1)] > start[static_cast<size_t>(m0)]; }
};
// Builds start, slice, split, at and kind from k and row filled in channel order (`count[m]` taps
// each, by ascending k), and groups the taps of kind-2 channels.
void FinishLutTaps(LutTaps& taps, const std::vector<int64_t>& count, int64_t K);

// For output channels m in [m0, m1) and every column c < cols:
//   acc[(m - m0) * ld_acc + c] += sum over m's taps (k, r) of error row r at index[off[k] + c].
void LutErrorAdd(const LutTaps& taps, int64_t m0, int64_t m1, const uint8_t* index, const int64_t* off,
                 int cols, int32_t* acc, size_t ld_acc);

bool UsingAvx2();

}  // namespace axonnx::roupconv
