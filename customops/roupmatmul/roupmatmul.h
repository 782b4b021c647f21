// ROUPMatMul (domain com.axonnx, version 1): QLinearMatMul whose multiplications are done by a
// per-position multiplier of B (docs/roupmatmul-op.md). The numpy oracle axonnx/ops/roupmatmul.py
// is the specification.
//
// Every batch matrix product A_i B_i is a 1x1 ROUPConv (x = A_i^T as K channels of M pixels,
// w = B_i^T, one filter per column), and the distinct matrices of B are that conv's groups: the
// op transposes A into that layout, runs ROUPConv's plan and GEMMs (roupconv/), and transposes
// the result back. A constant B is planned once, at session creation; an activation B (attention)
// on every run, for whatever batch and sequence length it has.
//
// Without y_scale and y_zero_point (six inputs) the op is MatMulInteger's int32 form: y holds the
// accumulators sum_k M(a - a_zero_point, b - b_zero_point); the scales are checked, not applied.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "roupconv/roupconv.h"

namespace axonnx::roupmatmul {

inline constexpr const char* kOpName = "ROUPMatMul";

class ROUPMatMulKernel : public roupconv::ROUPConvKernel {
 public:
  ROUPMatMulKernel(const OrtApi& api, const OrtKernelInfo* info, ONNXTensorElementDataType a_type,
                   ONNXTensorElementDataType b_type, ONNXTensorElementDataType y_type);

 protected:
  // Checks the inputs and computes y (int32 accumulators when integer_output_); throws OpError
  // (without the node prefix) for bad inputs.
  // `in` holds a as x and b as w.
  void RunMatMul(OrtKernelContext* context, const Inputs& in,
                 const std::function<uint8_t*(const std::vector<int64_t>&)>& allocate) const;

 private:
  // A run's plan of an activation B and its buffers, kept for the next runs.
  struct RunBuffers {
    roupconv::WeightPlan plan;
    std::vector<uint8_t> x, y, bt;  // bt: a matrix of B transposed
    std::vector<int16_t> values;
    std::vector<int32_t> zero;
  };
  std::unique_ptr<RunBuffers> AcquireBuffers() const;
  void ReleaseBuffers(std::unique_ptr<RunBuffers> buffers) const;

  void CheckB(const std::vector<int64_t>& b_shape, size_t zero_points) const;
  roupconv::WeightPlan PlanB(const uint8_t* b, const std::vector<int64_t>& b_shape,
                             const uint8_t* zero_point, size_t zero_points) const;
  // PlanB's result for a B whose positions all use multiplier uniform_multiplier_ (no LUT), built
  // straight into the u8 GEMM's layout with one table lookup per position and slot: an
  // activation B (attention) is planned on every run.
  void PlanBLean(const uint8_t* b, int64_t G, int64_t K, int64_t N, const uint8_t* zero_point,
                 size_t zero_points, RunBuffers& buffers) const;

  bool integer_output_;  // y is int32 (no y_scale): Execute's accumulators, not requantized
  std::shared_ptr<const roupconv::WeightPlan> constant_b_plan_;
  std::vector<int64_t> constant_b_shape_;
  uint8_t b_flip_;  // XOR turning a stored byte of b into its index (0x80 for int8)
  // Per multiplier: its nonzero slots, each with its value for every zero-point-free b + 256.
  struct SlotTable {
    int slot;
    std::array<int16_t, 512> value;
  };
  std::vector<std::vector<SlotTable>> slot_tables_;
  int uniform_multiplier_ = -1;  // the multiplier of every position of B, when one (not a LUT) is
  mutable std::mutex buffers_mutex_;
  mutable std::vector<std::unique_ptr<RunBuffers>> free_buffers_;
};

// TY int32_t: the int32 form (y_scale and y_zero_point absent). y_scale and y_zero_point are
// optional in every kernel so that onnxruntime's schema takes both forms; the int32 kernels are
// registered first (register.cc): a node without y_zero_point infers int32 output from them, and
// their int32 y_zero_point never matches an 8-bit one.
template <typename TA, typename TB, typename TY>
struct ROUPMatMul : ROUPMatMulKernel {
  ROUPMatMul(const OrtApi* api, const OrtKernelInfo* info)
      : ROUPMatMulKernel(*api, info, roupconv::ElementTypeOf(TA{}), roupconv::ElementTypeOf(TB{}), roupconv::ElementTypeOf(TY{})) {}

  Ort::Status Compute(OrtKernelContext* context, const Ort::Custom::Tensor<TA>& a,
                      const Ort::Custom::Tensor<float>& a_scale,
                      const Ort::Custom::Tensor<TA>& a_zero_point,
                      const Ort::Custom::Tensor<TB>& b, const Ort::Custom::Tensor<float>& b_scale,
                      const Ort::Custom::Tensor<TB>& b_zero_point,
                      std::optional<const Ort::Custom::Tensor<float>*> y_scale,
                      std::optional<const Ort::Custom::Tensor<TY>*> y_zero_point,
                      std::optional<const Ort::Custom::Tensor<int32_t>*> bias,
                      Ort::Custom::Tensor<TY>& y) {
    try {
      roupconv::CheckScalar(a_scale, "a_scale");
      roupconv::CheckScalar(a_zero_point, "a_zero_point");
      const bool requantize = y_scale.has_value() && *y_scale && y_zero_point.has_value() && *y_zero_point;
      Inputs in = ReadInputs(a, a_scale, a_zero_point, b, b_scale, b_zero_point, bias);
      if (requantize) {  // the constructor checked that the int32 form has neither
        roupconv::CheckScalar(**y_scale, "y_scale");
        roupconv::CheckScalar(**y_zero_point, "y_zero_point");
        in.y_scale = *(*y_scale)->Data();
        in.y_zero_point = static_cast<int>(*(*y_zero_point)->Data());
      }
      RunMatMul(context, in, [&y](const std::vector<int64_t>& shape) {
        return reinterpret_cast<uint8_t*>(y.Allocate(shape));
      });
      return Ort::Status(nullptr);
    } catch (const std::exception& e) {
      return Ort::Status((Prefix() + e.what()).c_str(), ORT_INVALID_ARGUMENT);
    }
  }
};

}  // namespace axonnx::roupmatmul
