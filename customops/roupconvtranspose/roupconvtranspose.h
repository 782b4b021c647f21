// ROUPConvTranspose (domain com.axonnx, version 1): a 2-D ConvTranspose on quantized operands
// (QLinearConv's inputs, ConvTranspose's weight [C_in, C_out/group, kH, kW] and attributes) whose
// multiplications are done by a per-weight-position multiplier (docs/roupconvtranspose-op.md). The
// numpy oracle axonnx/ops/roupconvtranspose.py is the specification.
//
// Built on ROUPConv's machinery: every input pixel meets every weight position of its group once,
// so cols[(o, kh, kw), pixel] = sum_c M(x[c, pixel], w[c, o, kh, kw]) is a grouped 1x1 ROUPConv with
// C_out * kH * kW filters (its weight plan, u8/int16 GEMMs and LUT error rows); col2im then adds
// each column into the output pixel it lands on (padding crops, never multiplies), adds the bias
// and requantizes as QLinearConv does.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "roupconv/roupconv.h"

namespace axonnx::roupconvtranspose {

inline constexpr const char* kOpName = "ROUPConvTranspose";

class ROUPConvTransposeKernel : public roupconv::ROUPConvKernel {
 public:
  ROUPConvTransposeKernel(const OrtApi& api, const OrtKernelInfo* info, ONNXTensorElementDataType x_type,
                          ONNXTensorElementDataType w_type, ONNXTensorElementDataType y_type);

 protected:
  void Run(OrtKernelContext* context, const Inputs& in,
           const std::function<uint8_t*(const std::vector<int64_t>&)>& allocate) const;

 private:
  struct Shape {
    std::array<int64_t, 2> begin{}, out{};  // top/left crop, output height/width
  };
  void CheckWeight(const std::vector<int64_t>& w_shape) const;
  void Check(const Inputs& in) const;
  Shape Resolve(const std::vector<int64_t>& x_shape, const std::vector<int64_t>& w_shape) const;
  // The plan of the equivalent 1x1 ROUPConv: filter (g, o, kh, kw) = w[g * Cg + c, o, kh, kw].
  roupconv::WeightPlan Plan(const uint8_t* w, const std::vector<int64_t>& w_shape, const uint8_t* w_zero_point,
                            size_t w_zero_point_size) const;

  roupconv::ConvAttributes geometry_;  // the node's strides, dilations, pads, group, auto_pad
  std::array<int64_t, 2> output_padding_{0, 0};
  std::vector<int64_t> output_shape_;  // empty, or the output's height and width
  std::shared_ptr<const roupconv::WeightPlan> plan_;  // for a constant weight
};

template <typename TX, typename TW, typename TY>
using ROUPConvTranspose = roupconv::ROUPConv<TX, TW, TY, ROUPConvTransposeKernel>;

}  // namespace axonnx::roupconvtranspose
