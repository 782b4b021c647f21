// QLinearConv's requantization, bit for bit (docs/roupconv-op.md, Semantics 5): AVX-512 (masked
// tails), AVX2 and portable loops, chosen once by Cpu(); all give the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace axonnx::roupconv {

// QLinearConv's requantization: y = saturate(round_half_even(float(acc) * scale) + zero_point)
// into [lo, hi], stored as bytes (two's complement for int8).
void Requantize(const int32_t* acc, int n, float scale, int zero_point, int lo, int hi,
                uint8_t* out);
// The same for `rows` rows of n values: acc + r * ld_acc -> out + r * ld_out.
void RequantizeRows(const int32_t* acc, size_t ld_acc, int rows, int n, float scale, int zero_point,
                    int lo, int hi, uint8_t* out, size_t ld_out);

}  // namespace axonnx::roupconv
