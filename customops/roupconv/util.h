// Small helpers shared by ROUPConv's files.
#pragma once

#include <algorithm>
#include <cstdint>

#include <onnxruntime_c_api.h>

#include "roupconv/multiplier.h"

namespace axonnx::roupconv {

inline bool IsSigned(ONNXTensorElementDataType type) { return type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8; }

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t RoundUp(int64_t a, int64_t b) { return CeilDiv(a, b) * b; }

constexpr int kTableSize = 256;  // LUT tables are 256 x 256

// With the activation encoded, digit j's partial product 4^j round(w - zw) D_j(x - zx) is split
// as (2^e round(w - zw)) x (2^(2j - e) D_j(x - zx)), e = WeightDigitExponent(j): a rounded
// 9-bit weight times 4^3 still fits int16, times 4^4 would not.
constexpr int WeightDigitExponent(int j) { return 2 * std::min(j, kNameDigits - 1); }

}  // namespace axonnx::roupconv
