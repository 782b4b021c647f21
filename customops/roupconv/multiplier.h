// The multipliers a ROUPConv node names, parsed from their canonical names (SPEC.md,
// axonnx/multipliers/names.py): ROUP(P,R), ROUP(P,R;N=8), ROUP(P;r=a/b/..), SKIP, LUT(name).
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace axonnx::roupconv {

constexpr int kBits = 8;                  // N of every multiplier name inside the op
constexpr int kNameDigits = kBits / 2;    // the digits P and the rounding vector refer to
// Zero-point-free operands (x - zx, w - zw) span up to 9 bits signed: one more radix-4 digit,
// kept exact (r = 0), which is 0 for every operand in the 8-bit range (SPEC.md).
constexpr int kDigits = kNameDigits + 1;

enum class MultiplierKind { kRoup, kSkip, kLut };

struct Multiplier {
  MultiplierKind kind = MultiplierKind::kRoup;
  std::string name;
  int perforation = 0;                // P: digits j < P are omitted
  std::array<int, kDigits> width{};   // r_j for j >= P (rounding width of partial product j);
                                      // r_4, of the extra digit, is 0
  int lut = -1;                       // ordinal among the node's LUT entries
  std::string lut_name;

  bool KeepsDigit(int j) const { return kind == MultiplierKind::kRoup && j >= perforation; }
};

// Throws OpError naming the problem when `text` is not a valid 8-bit multiplier name.
Multiplier ParseMultiplier(const std::string& text);

// Booth digit j of a two's-complement value v of up to 10 bits: -2 b[2j+1] + b[2j] + b[2j-1],
// b[-1] = 0.
inline int BoothDigit(int v, int j) {
  const unsigned u = static_cast<unsigned>(v) & 0x3FFu;
  const int hi = (u >> (2 * j + 1)) & 1u;
  const int mid = (u >> (2 * j)) & 1u;
  const int lo = j > 0 ? static_cast<int>((u >> (2 * j - 1)) & 1u) : 0;
  return -2 * hi + mid + lo;
}

// round_r(a) = 2^r floor((a + 2^(r-1)) / 2^r) for r >= 1, round_0(a) = a (eq. 2, exact).
inline int RoundHalfUp(int a, int r) {
  if (r == 0) return a;
  const int64_t shifted = (static_cast<int64_t>(a) + (int64_t{1} << (r - 1))) >> r;  // floors
  return static_cast<int>(shifted * (int64_t{1} << r));
}

}  // namespace axonnx::roupconv
