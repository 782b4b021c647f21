// The ROUPConv op: attributes and checks (at session creation where possible), the output shape,
// and Run, which plans (plan.cc) and executes (execute.cc).
#include "roupconv/roupconv.h"

#include <algorithm>
#include <cmath>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <sstream>

#include "roupconv/util.h"

namespace axonnx::roupconv {

ONNXTensorElementDataType ElementTypeOf(uint8_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8; }
ONNXTensorElementDataType ElementTypeOf(int8_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8; }
ONNXTensorElementDataType ElementTypeOf(int32_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32; }

void CheckScalar(const Ort::Custom::TensorBase& t, const char* name) {
  if (t.NumberOfElement() != 1) {
    throw OpError(std::string(name) + " must be a scalar (per-tensor), got shape " + ShapeString(t.Shape()));
  }
}

namespace {

constexpr size_t kMaxMultipliers = 256;  // multiplier_index is uint8

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// Geometry attributes past this are refused: every size computed from them then stays far
// from int64 overflow (a pad near 2^63 would otherwise wrap the output shape).
constexpr int64_t kMaxGeometry = int64_t{1} << 24;

template <size_t N>
std::array<int64_t, N> ReadFixed(const std::vector<int64_t>& values, const char* name, int64_t min) {
  if (values.size() != N) {
    throw OpError(std::string(name) + " must hold " + std::to_string(N) + " values for a 2-D "
                  "convolution, got " + std::to_string(values.size()));
  }
  std::array<int64_t, N> out{};
  for (size_t i = 0; i < N; ++i) {
    if (values[i] < min || values[i] > kMaxGeometry) {
      throw OpError(std::string(name) + " values must lie in [" + std::to_string(min) + ", " +
                    std::to_string(kMaxGeometry) + "], got " + ShapeString(values));
    }
    out[i] = values[i];
  }
  return out;
}

}  // namespace

// ---- construction: attributes, checked once ----------------------------------------------------

ROUPConvKernel::ROUPConvKernel(const OrtApi& api, const OrtKernelInfo* info,
                               ONNXTensorElementDataType x_type, ONNXTensorElementDataType w_type,
                               ONNXTensorElementDataType y_type)
    : ROUPConvKernel(api, info, x_type, w_type, y_type, kOpName, true) {}

ROUPConvKernel::ROUPConvKernel(const char* op_name, const OrtApi& api, const OrtKernelInfo* info,
                               ONNXTensorElementDataType x_type, ONNXTensorElementDataType w_type,
                               ONNXTensorElementDataType y_type)
    : api_(api),
      y_type_(y_type),
      op_name_(op_name),
      node_name_(KernelAttributes(api, info).node_name()),
      x_flip_(IsSigned(x_type) ? 0x80 : 0),
      w_flip_(IsSigned(w_type) ? 0x80 : 0) {}

ROUPConvKernel::ROUPConvKernel(const OrtApi& api, const OrtKernelInfo* info,
                               ONNXTensorElementDataType x_type, ONNXTensorElementDataType w_type,
                               ONNXTensorElementDataType y_type, const char* op_name,
                               bool plan_constant_weight)
    : ROUPConvKernel(op_name, api, info, x_type, w_type, y_type) {
  KernelAttributes attrs(api, info);
  try {
    if (attrs.InputCount() < 8) {
      throw OpError("needs QLinearConv's 8 inputs (x, x_scale, x_zero_point, w, w_scale, "
                    "w_zero_point, y_scale, y_zero_point) and an optional bias, got " +
                    std::to_string(attrs.InputCount()));
    }
    // An empty name leaves a required input out: onnxruntime would hand Compute a null
    // value, so the node is refused here, at session creation.
    static const char* const kRequired[] = {"x", "x_scale", "x_zero_point", "w", "w_scale",
                                            "w_zero_point", "y_scale", "y_zero_point"};
    for (size_t i = 0; i < 8; ++i) {
      if (attrs.InputName(i).empty()) {
        throw OpError(std::string("input ") + std::to_string(i) + " (" + kRequired[i] +
                      ") is required but the node leaves it out (an empty name)");
      }
    }
    ReadAttributes(attrs);
    BuildLutRows();
    // With a constant weight, every weight-dependent check (and the plan) happens now.
    std::optional<TensorValue> w = plan_constant_weight ? attrs.ConstantInput(3) : std::nullopt;
    if (w) {
      CheckWeightShape(w->shape);
      std::optional<TensorValue> zw = attrs.ConstantInput(5);
      if (zw) {
        const size_t m = static_cast<size_t>(w->shape[0]);
        if (zw->size() != 1 && zw->size() != m) {
          throw OpError("w_zero_point must be a scalar or hold one value per output channel (" +
                        std::to_string(m) + "), got shape " + ShapeString(zw->shape));
        }
        constant_plan_ = std::make_shared<const WeightPlan>(
            BuildPlan(w->data<uint8_t>(), w->shape, zw->data<uint8_t>(), zw->size(), conv_.group,
                      IndexData()));
      }
    }
  } catch (const std::exception& e) {
    throw OpError(Prefix() + e.what());
  }
}

ROUPConvKernel::ROUPConvKernel(const OrtApi& api, const OrtKernelInfo* info,
                               ONNXTensorElementDataType x_type, ONNXTensorElementDataType w_type,
                               ONNXTensorElementDataType y_type, const char* op_name)
    : ROUPConvKernel(op_name, api, info, x_type, w_type, y_type) {
  KernelAttributes attrs(api, info);
  try {
    ReadAttributes(attrs, /*conv_index=*/false);
    BuildLutRows();
  } catch (const std::exception& e) {
    throw OpError(Prefix() + e.what());
  }
}

std::string ROUPConvKernel::Prefix() const {
  return std::string("[") + op_name_ + "] node '" + node_name_ + "': ";
}

void ROUPConvKernel::ReadAttributes(const KernelAttributes& attrs, bool conv_index) {
  if (auto v = attrs.String("auto_pad")) {
    static const char* const kModes[] = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"};
    if (std::none_of(std::begin(kModes), std::end(kModes), [&](const char* m) { return *v == m; })) {
      throw OpError("unknown auto_pad " + Quote(*v) + "; use NOTSET, SAME_UPPER, SAME_LOWER or VALID");
    }
    conv_.auto_pad = *v;
  }
  if (auto v = attrs.Ints("strides")) conv_.strides = ReadFixed<2>(*v, "strides", 1);
  if (auto v = attrs.Ints("dilations")) conv_.dilations = ReadFixed<2>(*v, "dilations", 1);
  if (auto v = attrs.Ints("pads")) conv_.pads = ReadFixed<4>(*v, "pads", 0);
  if (auto v = attrs.Ints("kernel_shape")) {
    const auto k = ReadFixed<2>(*v, "kernel_shape", 1);
    conv_.kernel_shape.assign(k.begin(), k.end());
  }
  if (auto v = attrs.Int("group")) {
    if (*v < 1) throw OpError("group must be >= 1, got " + std::to_string(*v));
    conv_.group = *v;
  }

  // Multipliers and their LUTs.
  const std::vector<std::string> names =
      attrs.Strings("multipliers").value_or(std::vector<std::string>{"ROUP(0,0)"});
  if (names.empty()) throw OpError("multipliers is empty; name at least one multiplier");
  if (names.size() > kMaxMultipliers) {
    throw OpError("at most 256 multipliers per node (multiplier_index is uint8), got " +
                  std::to_string(names.size()));
  }
  size_t luts = 0;
  for (const std::string& name : names) {
    Multiplier m = ParseMultiplier(name);
    if (m.kind == MultiplierKind::kLut) m.lut = static_cast<int>(luts++);
    multipliers_.push_back(std::move(m));
  }

  if (auto v = attrs.String("encoded_operand")) {
    if (*v != "weight" && *v != "activation") {
      throw OpError("encoded_operand must be 'weight' or 'activation', got " + Quote(*v));
    }
    encode_activation_ = *v == "activation";
  }

  std::optional<TensorValue> tables = attrs.Tensor("lut_tables");
  if (luts == 0 && tables && tables->size() != 0) {
    throw OpError("lut_tables holds tables, but multipliers names no LUT(...) entry");
  }
  if (luts > 0) {
    if (!tables) {
      throw OpError("multipliers names " + std::to_string(luts) +
                    " LUT(...) entries, but the lut_tables attribute is missing");
    }
    if (tables->type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32) {
      throw OpError(std::string("lut_tables must be an int32 tensor, got ") + TypeName(tables->type));
    }
    const std::vector<int64_t> expected{static_cast<int64_t>(luts), kTableSize, kTableSize};
    if (tables->shape != expected) {
      throw OpError("lut_tables has shape " + ShapeString(tables->shape) + ", but multipliers names " +
                    std::to_string(luts) + " LUT(...) entries: expected " + ShapeString(expected));
    }
    lut_tables_.resize(luts);
    for (size_t l = 0; l < luts; ++l) {
      const int32_t* t = tables->data<int32_t>() + l * kTableSize * kTableSize;
      lut_tables_[l].assign(t, t + kTableSize * kTableSize);
    }
  }
  lut_signedness_.assign(2 * luts, 0);
  if (auto v = attrs.Ints("lut_signedness")) {
    if (v->size() != 2 * luts) {
      throw OpError("lut_signedness needs 2 values per LUT (" + std::to_string(2 * luts) + "), got " +
                    std::to_string(v->size()));
    }
    for (int64_t s : *v) {
      if (s != 0 && s != 1) throw OpError("lut_signedness values must be 0 or 1, got " + ShapeString(*v));
    }
    lut_signedness_ = *v;
  }

  if (std::optional<TensorValue> index = attrs.Tensor("multiplier_index")) {
    if (index->type != ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8) {
      throw OpError(std::string("multiplier_index must be a uint8 tensor, got ") + TypeName(index->type));
    }
    if (conv_index && index->shape.size() != 4) {
      throw OpError("multiplier_index must have the weight's rank-4 shape, got " + ShapeString(index->shape));
    }
    const uint8_t* data = index->data<uint8_t>();
    const uint8_t top = index->size() ? *std::max_element(data, data + index->size()) : 0;
    if (top >= multipliers_.size()) {
      throw OpError("multiplier_index refers to multiplier " + std::to_string(top) + ", but the node names " +
                    std::to_string(multipliers_.size()) + " multipliers");
    }
    index_ = std::move(index);
  }
}

void ROUPConvKernel::CheckWeightShape(const std::vector<int64_t>& w_shape) const {
  CheckRank4Weight(w_shape, conv_.kernel_shape, conv_.group, "convolution only: the weight must have rank 4",
                   "output");
}

void ROUPConvKernel::CheckRank4Weight(const std::vector<int64_t>& w_shape, const std::vector<int64_t>& kernel_shape,
                                      int64_t group, const char* rank_rule, const char* axis0) const {
  if (w_shape.size() != 4) {
    throw OpError(std::string("supports 2-D ") + rank_rule + ", got shape " + ShapeString(w_shape));
  }
  if (std::any_of(w_shape.begin(), w_shape.end(), [](int64_t d) { return d < 1; })) {
    throw OpError("the weight has an empty dimension: " + ShapeString(w_shape));
  }
  if (!kernel_shape.empty() && (kernel_shape[0] != w_shape[2] || kernel_shape[1] != w_shape[3])) {
    throw OpError("kernel_shape " + ShapeString(kernel_shape) + " does not match the weight " +
                  ShapeString(w_shape));
  }
  if (w_shape[0] % group) {
    throw OpError("the weight's " + std::to_string(w_shape[0]) + " " + axis0 +
                  " channels do not divide into group=" + std::to_string(group));
  }
  if (index_ && index_->shape != w_shape) {
    throw OpError("multiplier_index has shape " + ShapeString(index_->shape) + ", the weight has " +
                  ShapeString(w_shape));
  }
}

// ---- running ---------------------------------------------------------------------------------

std::vector<int64_t> ROUPConvKernel::OutputShape(const Inputs& in, Geometry* geometry) const {
  const int64_t H = in.x_shape[2], W = in.x_shape[3];
  const int64_t kernel[2] = {in.w_shape[2], in.w_shape[3]};
  const int64_t size[2] = {H, W};
  int64_t begin[2] = {conv_.pads[0], conv_.pads[1]}, end[2] = {conv_.pads[2], conv_.pads[3]};
  if (conv_.auto_pad == "VALID") {
    begin[0] = begin[1] = end[0] = end[1] = 0;
  } else if (conv_.auto_pad != "NOTSET") {
    for (int a = 0; a < 2; ++a) {
      const int64_t out = CeilDiv(size[a], conv_.strides[a]);
      const int64_t total = std::max<int64_t>(
          0, (out - 1) * conv_.strides[a] + conv_.dilations[a] * (kernel[a] - 1) + 1 - size[a]);
      const int64_t small = total / 2, large = total - total / 2;
      begin[a] = conv_.auto_pad == "SAME_UPPER" ? small : large;
      end[a] = conv_.auto_pad == "SAME_UPPER" ? large : small;
    }
  }
  int64_t out[2];
  for (int a = 0; a < 2; ++a) {
    const int64_t span = conv_.dilations[a] * (kernel[a] - 1) + 1;
    const int64_t padded = size[a] + begin[a] + end[a];
    if (padded < span) {
      throw OpError("the kernel does not fit the " + std::to_string(H) + "x" + std::to_string(W) + " input");
    }
    out[a] = (padded - span) / conv_.strides[a] + 1;
  }
  geometry->pad_top = begin[0];
  geometry->pad_left = begin[1];
  geometry->out_h = out[0];
  geometry->out_w = out[1];
  return {in.x_shape[0], in.w_shape[0], out[0], out[1]};
}

void ROUPConvKernel::Check(const Inputs& in) const {
  if (in.x_shape.size() != 4) {
    throw OpError("supports 2-D convolution only: x must be NCHW, got shape " + ShapeString(in.x_shape));
  }
  // Requantization divides by y_scale and multiplies by x_scale * w_scale: each must be a
  // positive finite number, as the oracle requires.
  const auto positive = [](float v) { return std::isfinite(v) && v > 0.0f; };
  if (!positive(in.x_scale) || !positive(in.y_scale) ||
      !std::all_of(in.w_scale, in.w_scale + in.w_scale_size, positive)) {
    throw OpError("x_scale, w_scale and y_scale must be positive finite numbers");
  }
  if (constant_plan_) {
    const WeightPlan& p = *constant_plan_;
    if (in.w_shape != std::vector<int64_t>{p.M, p.Cg, p.KH, p.KW}) {
      throw OpError("the weight changed shape after the session was created");
    }
  } else {
    CheckWeightShape(in.w_shape);
  }
  const int64_t M = in.w_shape[0];
  if (in.x_shape[1] != in.w_shape[1] * conv_.group) {
    throw OpError("x has " + std::to_string(in.x_shape[1]) + " channels, but the weight " +
                  ShapeString(in.w_shape) + " with group=" + std::to_string(conv_.group) + " needs " +
                  std::to_string(in.w_shape[1] * conv_.group));
  }
  const auto per_channel = [M](size_t n) { return n == 1 || n == static_cast<size_t>(M); };
  if (!per_channel(in.w_scale_size)) {
    throw OpError("w_scale must be a scalar or hold one value per output channel (" + std::to_string(M) +
                  "), got " + std::to_string(in.w_scale_size) + " values");
  }
  if (!per_channel(in.w_zero_point_size)) {
    throw OpError("w_zero_point must be a scalar or hold one value per output channel (" +
                  std::to_string(M) + "), got " + std::to_string(in.w_zero_point_size) + " values");
  }
  if (in.bias && in.bias_size != static_cast<size_t>(M)) {
    throw OpError("B must hold one value per output channel (" + std::to_string(M) + "), got " +
                  std::to_string(in.bias_size));
  }
}

void ROUPConvKernel::Run(OrtKernelContext* context, const Inputs& in,
                         const std::function<uint8_t*(const std::vector<int64_t>&)>& allocate) const {
  Check(in);
  Geometry geometry;
  const std::vector<int64_t> shape = OutputShape(in, &geometry);
  uint8_t* y = allocate(shape);
  if (shape[0] == 0 || shape[1] == 0) return;
  if (constant_plan_) {
    Execute(context, in, *constant_plan_, geometry, y);
  } else {
    if (in.w_zero_point_size != 1 && in.w_zero_point_size != static_cast<size_t>(in.w_shape[0])) {
      throw OpError("w_zero_point does not match the weight");
    }
    const WeightPlan plan = BuildPlan(in.w, in.w_shape, in.w_zero_point, in.w_zero_point_size, conv_.group,
                                      IndexData());
    Execute(context, in, plan, geometry, y);
  }
}

}  // namespace axonnx::roupconv
