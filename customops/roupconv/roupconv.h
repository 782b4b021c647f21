// ROUPConv (domain com.axonnx, version 1): QLinearConv whose multiplications are done by a
// per-weight-position multiplier (docs/roupconv-op.md). The numpy oracle axonnx/ops/roupconv.py
// is the specification; this kernel reproduces it bit for bit.
//
// Fast path (SPEC.md "A fast, exact kernel"): with the weight encoded,
//   sum_k M_k(x_k, w_k) = sum_r conv(round_r(X), W_r),  W_r = sum_{j >= P_c, r_cj = r} d_j(w) 4^j,
// one exact int16 GEMM per distinct rounding width r; with the activation encoded, one GEMM per
// Booth digit j of X. LUT positions join the exact group and add their error T[a][b] - a*b
// from a per-weight-value table row. Both operands are zero-point-free (x - zx, w - zw), so a
// real zero, padding included, reaches every multiplier as an exact 0.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <onnxruntime_cxx_api.h>
#include <onnxruntime_lite_custom_op.h>

#include "common/kernel_info.h"
#include "roupconv/depthwise.h"
#include "roupconv/gemm.h"
#include "roupconv/gemm_u8.h"
#include "roupconv/multiplier.h"

namespace axonnx::roupconv {

inline constexpr const char* kOpName = "ROUPConv";

// Conv attributes as the node gives them (ONNX defaults applied, auto_pad not yet resolved).
struct ConvAttributes {
  std::string auto_pad = "NOTSET";
  std::array<int64_t, 2> strides{1, 1};
  std::array<int64_t, 2> dilations{1, 1};
  std::array<int64_t, 4> pads{0, 0, 0, 0};  // top, left, bottom, right
  std::vector<int64_t> kernel_shape;        // empty: taken from the weight
  int64_t group = 1;
};

// Everything that depends only on the weight tensor, its zero point and the assignment:
// built once when both are constant initializers, otherwise on every run.
struct WeightPlan {
  int64_t M = 0, Cg = 0, KH = 0, KW = 0, K = 0, Kp = 0, Kq = 0, group = 1, Mg = 0;  // Kp, Kq: K rounded up to 2, 4

  struct Gemm {
    XTransform transform;  // activation index u (stored byte, int8 flipped) -> GEMM operand;
                           // its zero is set per run from x's zero point
    // Per conv group: the output channels (local to the group) whose weight row runs on the int16
    // GEMM, and those rows, compacted: [rows.size()][Kp].
    std::vector<std::vector<int32_t>> rows;
    std::vector<std::vector<int16_t>> weights;
    // Per conv group: the rows that run on the u8 x s8 GEMM (gemm_u8.h): the row is
    // 2^(shift8 - log_scale) * weights8, [rows8.size()][Kq]; rowsum8 is the sum of weights8.
    std::vector<std::vector<int32_t>> rows8;
    std::vector<std::vector<int8_t>> weights8;
    std::vector<std::vector<int32_t>> shift8;
    std::vector<std::vector<int32_t>> rowsum8;
  };
  std::vector<Gemm> gemms;
  // The u8 GEMM's k-quad order: position i holds natural quad quad_order[i] (natural: quad
  // (i * KW + j) * Cq / 4 + c / 4, as Im2Col lays them out); weights8 rows are in this order.
  std::vector<int32_t> quad_order;
  // Cg == 1 (every output channel reads one input channel: depthwise): the direct kernel
  // (depthwise.h) runs instead of the GEMMs, one term per GEMM slot, with its weights dense.
  bool direct = false;
  struct Term {
    XTransform transform;
    std::vector<int32_t> weights;  // [M][KH * KW]
  };
  std::vector<Term> terms;
  DepthwisePacked blocks;  // the terms' weights for the channel-block kernel
  LutTaps luts;  // the LUT positions and their error rows
  std::vector<int64_t> acc_bound;  // per m: the largest |accumulator| any activations give, bias aside
};

struct Scratch;

// Per-task scratch buffers, reused across tasks and runs (thread-safe).
class ScratchPool {
 public:
  ScratchPool();
  ~ScratchPool();
  std::unique_ptr<Scratch> Acquire();
  void Release(std::unique_ptr<Scratch> scratch);

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<Scratch>> free_;
};

class ROUPConvKernel {
 public:
  ROUPConvKernel(const OrtApi& api, const OrtKernelInfo* info, ONNXTensorElementDataType x_type,
                 ONNXTensorElementDataType w_type, ONNXTensorElementDataType y_type);

 protected:
  // For an op built on this machinery (ROUPConvTranspose): errors carry `op_name`, and the
  // constant weight is left for that op to plan (in its own layout).
  ROUPConvKernel(const OrtApi& api, const OrtKernelInfo* info, ONNXTensorElementDataType x_type,
                 ONNXTensorElementDataType w_type, ONNXTensorElementDataType y_type, const char* op_name,
                 bool plan_constant_weight);

  struct Inputs {
    const uint8_t* x;
    std::vector<int64_t> x_shape;
    float x_scale;
    uint8_t x_zero_point;  // stored byte
    const uint8_t* w;
    std::vector<int64_t> w_shape;
    const float* w_scale;
    size_t w_scale_size;
    const uint8_t* w_zero_point;
    size_t w_zero_point_size;
    float y_scale;
    int y_zero_point;
    const int32_t* bias;  // nullptr when absent
    size_t bias_size;
  };

  // Checks the inputs, plans and runs the convolution; `allocate` returns the output buffer.
  // Throws OpError (without the node prefix) for bad inputs.
  void Run(OrtKernelContext* context, const Inputs& in,
           const std::function<uint8_t*(const std::vector<int64_t>&)>& allocate) const;

  std::string Prefix() const;

  // For ops built on this kernel whose multiplier_index is not the rank-4 conv weight's shape
  // (ROUPMatMul): reads the node's multiplier attributes only, leaving the index's shape and the
  // plans to the subclass.
  ROUPConvKernel(const OrtApi& api, const OrtKernelInfo* info, ONNXTensorElementDataType x_type,
                 ONNXTensorElementDataType w_type, ONNXTensorElementDataType y_type, const char* op_name);

  // The inputs ROUPConv and the ops built on it share (ROUPMatMul: a as x, b as w); y's scale
  // and zero point are left to the caller (ROUPMatMul's int32 form has neither).
  template <typename TX, typename TW>
  static Inputs ReadInputs(const Ort::Custom::Tensor<TX>& x, const Ort::Custom::Tensor<float>& x_scale,
                           const Ort::Custom::Tensor<TX>& x_zero_point, const Ort::Custom::Tensor<TW>& w,
                           const Ort::Custom::Tensor<float>& w_scale,
                           const Ort::Custom::Tensor<TW>& w_zero_point,
                           std::optional<const Ort::Custom::Tensor<int32_t>*> bias) {
    Inputs in{};
    in.x = reinterpret_cast<const uint8_t*>(x.Data());
    in.x_shape = x.Shape();
    in.x_scale = *x_scale.Data();
    in.x_zero_point = static_cast<uint8_t>(*x_zero_point.Data());
    in.w = reinterpret_cast<const uint8_t*>(w.Data());
    in.w_shape = w.Shape();
    in.w_scale = w_scale.Data();
    in.w_scale_size = static_cast<size_t>(w_scale.NumberOfElement());
    in.w_zero_point = reinterpret_cast<const uint8_t*>(w_zero_point.Data());
    in.w_zero_point_size = static_cast<size_t>(w_zero_point.NumberOfElement());
    if (bias.has_value() && *bias) {
      in.bias = (*bias)->Data();
      in.bias_size = static_cast<size_t>((*bias)->NumberOfElement());
    }
    return in;
  }

  // A rank-4 weight with no empty dim, matching kernel_shape and multiplier_index, whose axis 0
  // (the `axis0` channels) divides into `group`; `rank_rule` names the op and its layout.
  void CheckRank4Weight(const std::vector<int64_t>& w_shape, const std::vector<int64_t>& kernel_shape,
                        int64_t group, const char* rank_rule, const char* axis0) const;

  struct Geometry {
    int64_t pad_top = 0, pad_left = 0, out_h = 0, out_w = 0;
  };
  // The plan of weight `w` run as `group` conv groups; `index`: the multiplier of each weight
  // position (w's layout; nullptr: all multiplier 0). Without `allow_direct` a depthwise weight
  // runs on the GEMMs too (Execute's acc_out needs them).
  WeightPlan BuildPlan(const uint8_t* w, const std::vector<int64_t>& w_shape,
                       const uint8_t* w_zero_point, size_t w_zero_point_size, int64_t group,
                       const uint8_t* index, bool allow_direct = true) const;
  // Runs the convolution conv_ describes. With `acc_out`, the int32 accumulators (bias and the
  // GEMMs' offset terms included) are written there as [N, M, out_h * out_w] instead of being
  // requantized into y; the plan must not be direct.
  void Execute(OrtKernelContext* context, const Inputs& in, const WeightPlan& plan,
               const Geometry& geometry, uint8_t* y, int32_t* acc_out = nullptr) const;

  // GEMM slot `slot` of a plan (a rounding width r, or a Booth digit j when the activation is
  // encoded): its activation transform, and the largest |operand| it gives.
  XTransform SlotTransform(int slot) const;
  int64_t SlotOperandBound(int slot) const;
  int Slots() const { return encode_activation_ ? kDigits : kBits + 1; }
  // Booth digit j of the zero-point-free weight b under ROUP multiplier `mult`: its slot and value.
  std::pair<int, int> RoupTerm(const Multiplier& mult, int j, int b) const;
  const std::vector<Multiplier>& multipliers() const { return multipliers_; }

  // What every constructor sets (the public and protected ones delegate here).
  ROUPConvKernel(const char* op_name, const OrtApi& api, const OrtKernelInfo* info,
                 ONNXTensorElementDataType x_type, ONNXTensorElementDataType w_type,
                 ONNXTensorElementDataType y_type);

  const OrtApi& api_;
  ONNXTensorElementDataType y_type_;
  ConvAttributes conv_;
  std::optional<TensorValue> index_;        // multiplier_index (uint8)
  const uint8_t* IndexData() const { return index_ ? index_->data<uint8_t>() : nullptr; }

 private:
  // conv_index: multiplier_index must have the rank-4 weight shape (ROUPConv's layout).
  void ReadAttributes(const KernelAttributes& attrs, bool conv_index = true);
  void BuildLutRows();
  void CheckWeightShape(const std::vector<int64_t>& w_shape) const;
  void Check(const Inputs& in) const;
  std::vector<int64_t> OutputShape(const Inputs& in, Geometry* geometry) const;
  void ExecuteDirect(OrtKernelContext* context, const Inputs& in, const WeightPlan& plan,
                     const Geometry& geometry, const std::vector<int32_t>& base,
                     const std::vector<float>& scale, uint8_t* y) const;

  const char* op_name_;
  std::string node_name_;
  uint8_t x_flip_, w_flip_;  // XOR turning a stored byte into its table index (0x80 for int8)

  std::vector<Multiplier> multipliers_;
  bool encode_activation_ = false;
  std::vector<std::vector<int32_t>> lut_tables_;  // [L][256 * 256], table[a][b]
  std::vector<int64_t> lut_signedness_;           // [2L]
  // The error rows of every LUT (row l * 256 + weight index; LutTables), and each row's largest |error|.
  std::vector<int32_t> lut_rows_;
  std::vector<uint8_t> lut_bytes_, lut_fits_, lut_lines8_;  // lut_bytes_ holds the 64-byte aligned planes
  std::vector<int32_t> lut_at8_;
  uint8_t* lut_planes16_ = nullptr;
  uint8_t* lut_planes8_ = nullptr;
  std::vector<int64_t> lut_worst_;
  std::shared_ptr<const WeightPlan> constant_plan_;
  mutable ScratchPool pool_;
};

ONNXTensorElementDataType ElementTypeOf(uint8_t);
ONNXTensorElementDataType ElementTypeOf(int8_t);
ONNXTensorElementDataType ElementTypeOf(int32_t);  // ROUPMatMul's int32 form

// A per-tensor input (a scale or zero point) holds one value.
void CheckScalar(const Ort::Custom::TensorBase& t, const char* name);

// One struct per (x, w, y) element-type combination, all registered under the same op name.
// `Kernel` is ROUPConvKernel, or an op with QLinearConv's inputs built on it (its Run and Prefix).
template <typename TX, typename TW, typename TY, typename Kernel = ROUPConvKernel>
struct ROUPConv : Kernel {
  ROUPConv(const OrtApi* api, const OrtKernelInfo* info)
      : Kernel(*api, info, ElementTypeOf(TX{}), ElementTypeOf(TW{}), ElementTypeOf(TY{})) {}

  Ort::Status Compute(OrtKernelContext* context, const Ort::Custom::Tensor<TX>& x,
                      const Ort::Custom::Tensor<float>& x_scale,
                      const Ort::Custom::Tensor<TX>& x_zero_point,
                      const Ort::Custom::Tensor<TW>& w, const Ort::Custom::Tensor<float>& w_scale,
                      const Ort::Custom::Tensor<TW>& w_zero_point,
                      const Ort::Custom::Tensor<float>& y_scale,
                      const Ort::Custom::Tensor<TY>& y_zero_point,
                      std::optional<const Ort::Custom::Tensor<int32_t>*> bias,
                      Ort::Custom::Tensor<TY>& y) {
    try {
      CheckScalar(x_scale, "x_scale");
      CheckScalar(x_zero_point, "x_zero_point");
      CheckScalar(y_scale, "y_scale");
      CheckScalar(y_zero_point, "y_zero_point");
      typename Kernel::Inputs in = Kernel::ReadInputs(x, x_scale, x_zero_point, w, w_scale, w_zero_point, bias);
      in.y_scale = *y_scale.Data();
      in.y_zero_point = static_cast<int>(*y_zero_point.Data());
      this->Run(context, in, [&y](const std::vector<int64_t>& shape) {
        return reinterpret_cast<uint8_t*>(y.Allocate(shape));
      });
      return Ort::Status(nullptr);
    } catch (const std::exception& e) {
      return Ort::Status((this->Prefix() + e.what()).c_str(), ORT_INVALID_ARGUMENT);
    }
  }
};

}  // namespace axonnx::roupconv
