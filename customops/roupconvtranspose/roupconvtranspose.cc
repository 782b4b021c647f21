// The ROUPConvTranspose op: attributes and checks, the output shape (as onnxruntime 1.32 resolves
// ConvTranspose's), and Run: a 1x1 ROUPConv's int32 accumulators, col2im, bias, requantization.
#include "roupconvtranspose/roupconvtranspose.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <mutex>

#include "roupconv/parallel.h"
#include "roupconv/requantize.h"
#include "roupconv/util.h"

namespace axonnx::roupconvtranspose {

using roupconv::CeilDiv;
using roupconv::WeightPlan;

namespace {

constexpr int64_t kMaxGeometry = int64_t{1} << 24;  // as ROUPConv's: sizes stay far from overflow

int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace

ROUPConvTransposeKernel::ROUPConvTransposeKernel(const OrtApi& api, const OrtKernelInfo* info,
                                                 ONNXTensorElementDataType x_type, ONNXTensorElementDataType w_type,
                                                 ONNXTensorElementDataType y_type)
    : ROUPConvKernel(api, info, x_type, w_type, y_type, kOpName, /*plan_constant_weight=*/false) {
  KernelAttributes attrs(api, info);
  try {
    // The base read (and checked) the geometry attributes into conv_; the GEMMs run a 1x1 conv.
    geometry_ = conv_;
    conv_ = roupconv::ConvAttributes{};
    conv_.group = geometry_.group;
    if (auto v = attrs.Ints("output_padding")) {
      if (v->size() != 2 || std::any_of(v->begin(), v->end(), [](int64_t a) { return a < 0 || a > kMaxGeometry; })) {
        throw OpError("output_padding must hold 2 values in [0, stride), got " + ShapeString(*v));
      }
      for (size_t a = 0; a < 2; ++a) {
        if ((*v)[a] >= geometry_.strides[a]) {
          throw OpError("output_padding " + ShapeString(*v) + " must lie below the strides " +
                        ShapeString({geometry_.strides[0], geometry_.strides[1]}) + " (onnxruntime refuses it too)");
        }
        output_padding_[a] = (*v)[a];
      }
    }
    if (auto v = attrs.Ints("output_shape")) {
      if ((v->size() != 2 && v->size() != 4) ||
          std::any_of(v->end() - 2, v->end(), [](int64_t a) { return a < 1 || a > kMaxGeometry; })) {
        throw OpError("output_shape must hold the output's [H, W] (or [N, C, H, W]), each >= 1, got " +
                      ShapeString(*v));
      }
      output_shape_.assign(v->end() - 2, v->end());
    }
    std::optional<TensorValue> w = attrs.ConstantInput(3);
    std::optional<TensorValue> zw = attrs.ConstantInput(5);
    if (w && zw) {
      CheckWeight(w->shape);
      const size_t m = static_cast<size_t>(w->shape[1] * geometry_.group);
      if (zw->size() != 1 && zw->size() != m) {
        throw OpError("w_zero_point must be a scalar or hold one value per output channel (" + std::to_string(m) +
                      "), got shape " + ShapeString(zw->shape));
      }
      plan_ = std::make_shared<const WeightPlan>(Plan(w->data<uint8_t>(), w->shape, zw->data<uint8_t>(), zw->size()));
    }
  } catch (const std::exception& e) {
    throw OpError(Prefix() + e.what());
  }
}

void ROUPConvTransposeKernel::CheckWeight(const std::vector<int64_t>& w_shape) const {
  CheckRank4Weight(w_shape, geometry_.kernel_shape, geometry_.group,
                   "transposed convolution only: the weight must be [C_in, C_out/group, kH, kW]", "input");
}

WeightPlan ROUPConvTransposeKernel::Plan(const uint8_t* w, const std::vector<int64_t>& w_shape,
                                         const uint8_t* w_zero_point, size_t w_zero_point_size) const {
  const int64_t G = geometry_.group, Cg = w_shape[0] / G, Og = w_shape[1], KK = w_shape[2] * w_shape[3];
  const int64_t R = Og * KK, M1 = G * R;  // 1x1 filters per group, in all
  std::vector<uint8_t> w1(static_cast<size_t>(M1 * Cg));
  std::vector<uint8_t> index1(index_ ? w1.size() : 0);
  const uint8_t* index = IndexData();
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t c = 0; c < Cg; ++c) {
      for (int64_t o = 0; o < Og; ++o) {
        for (int64_t t = 0; t < KK; ++t) {
          const size_t from = static_cast<size_t>((((g * Cg + c) * Og + o) * KK) + t);
          const size_t to = static_cast<size_t>((g * R + o * KK + t) * Cg + c);
          w1[to] = w[from];
          if (index) index1[to] = index[from];
        }
      }
    }
  }
  std::vector<uint8_t> zw1(w_zero_point, w_zero_point + 1);
  if (w_zero_point_size != 1) {
    zw1.resize(static_cast<size_t>(M1));
    for (int64_t row = 0; row < M1; ++row) zw1[static_cast<size_t>(row)] = w_zero_point[row / KK];  // o = g * Og + o_local
  }
  return BuildPlan(w1.data(), {M1, Cg, 1, 1}, zw1.data(), zw1.size(), G, index ? index1.data() : nullptr,
                   /*allow_direct=*/false);
}

ROUPConvTransposeKernel::Shape ROUPConvTransposeKernel::Resolve(const std::vector<int64_t>& x_shape,
                                                                const std::vector<int64_t>& w_shape) const {
  Shape s;
  const std::string& pad = geometry_.auto_pad;
  const bool same = pad == "SAME_UPPER" || pad == "SAME_LOWER";
  for (size_t a = 0; a < 2; ++a) {
    const int64_t size = x_shape[2 + a], stride = geometry_.strides[a];
    const int64_t span = geometry_.dilations[a] * (w_shape[2 + a] - 1) + 1;
    const int64_t natural = (size - 1) * stride + output_padding_[a] + span;
    if (output_shape_.empty() && !same) {
      const int64_t begin = pad == "VALID" ? 0 : geometry_.pads[a], end = pad == "VALID" ? 0 : geometry_.pads[a + 2];
      s.begin[a] = begin;
      s.out[a] = natural - begin - end;
    } else {
      const int64_t target = output_shape_.empty() ? size * stride : output_shape_[a];
      const int64_t total = std::max<int64_t>(0, natural - target);
      s.begin[a] = pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      s.out[a] = output_shape_.empty() ? natural - total : target;
      if ((s.out[a] + total - span) / stride + 1 != size) {  // onnxruntime's consistency check
        throw OpError("output_shape " + ShapeString(output_shape_) + " does not fit the " + ShapeString(x_shape) +
                      " input (at most " + std::to_string(natural + stride - 1 - output_padding_[a]) + " along axis " +
                      std::to_string(a) + "); fix the output_shape attribute");
      }
    }
    if (s.out[a] < 1) {
      throw OpError("the padding leaves no output for the " + ShapeString(x_shape) + " input");
    }
  }
  return s;
}

void ROUPConvTransposeKernel::Check(const Inputs& in) const {
  if (in.x_shape.size() != 4) {
    throw OpError("supports 2-D transposed convolution only: x must be NCHW, got shape " + ShapeString(in.x_shape));
  }
  const auto positive = [](float v) { return std::isfinite(v) && v > 0.0f; };
  if (!positive(in.x_scale) || !positive(in.y_scale) ||
      !std::all_of(in.w_scale, in.w_scale + in.w_scale_size, positive)) {
    throw OpError("x_scale, w_scale and y_scale must be positive finite numbers");
  }
  CheckWeight(in.w_shape);
  if (in.x_shape[1] != in.w_shape[0]) {
    throw OpError("x has " + std::to_string(in.x_shape[1]) + " channels, but the weight " + ShapeString(in.w_shape) +
                  " takes " + std::to_string(in.w_shape[0]));
  }
  const int64_t M = in.w_shape[1] * geometry_.group;
  const auto per_channel = [M](size_t n) { return n == 1 || n == static_cast<size_t>(M); };
  if (!per_channel(in.w_scale_size)) {
    throw OpError("w_scale must be a scalar or hold one value per output channel (" + std::to_string(M) + "), got " +
                  std::to_string(in.w_scale_size) + " values");
  }
  if (!per_channel(in.w_zero_point_size)) {
    throw OpError("w_zero_point must be a scalar or hold one value per output channel (" + std::to_string(M) +
                  "), got " + std::to_string(in.w_zero_point_size) + " values");
  }
  if (in.bias && in.bias_size != static_cast<size_t>(M)) {
    throw OpError("B must hold one value per output channel (" + std::to_string(M) + "), got " +
                  std::to_string(in.bias_size));
  }
}

namespace {

// col2im + bias + requantization, one task per (image, output channel).
struct Col2Im : roupconv::TaskErrors {
  const int32_t* cols;  // [N][M1][H * W]
  const int32_t* bias;
  const float* scale;
  uint8_t* y;
  int64_t M, M1, Og, KH, KW, H, W, SH, SW, DH, DW, top, left, out_h, out_w;
  int y_zero_point, y_lo, y_hi;

  void Task(size_t task) {
    const int64_t n = static_cast<int64_t>(task) / M, o = static_cast<int64_t>(task) % M;
    const int64_t g = o / Og, ol = o % Og;
    std::vector<int32_t> acc(static_cast<size_t>(out_h * out_w), bias ? bias[o] : 0);
    for (int64_t i = 0; i < KH; ++i) {
      // Input rows landing inside the output: 0 <= ih * SH + i * DH - top < out_h.
      const int64_t r0 = i * DH - top;
      const int64_t ih0 = std::max<int64_t>(0, CeilDiv(std::max<int64_t>(0, -r0), SH));
      const int64_t ih1 = std::min<int64_t>(H, FloorDiv(out_h - 1 - r0, SH) + 1);
      for (int64_t j = 0; j < KW; ++j) {
        const int64_t c0 = j * DW - left;
        const int64_t iw0 = std::max<int64_t>(0, CeilDiv(std::max<int64_t>(0, -c0), SW));
        const int64_t iw1 = std::min<int64_t>(W, FloorDiv(out_w - 1 - c0, SW) + 1);
        if (iw0 >= iw1) continue;
        const int32_t* src = cols + (n * M1 + g * Og * KH * KW + (ol * KH + i) * KW + j) * H * W;
        for (int64_t ih = ih0; ih < ih1; ++ih) {
          int32_t* dst = acc.data() + (ih * SH + r0) * out_w + c0;
          const int32_t* row = src + ih * W;
          if (SW == 1) {
            for (int64_t iw = iw0; iw < iw1; ++iw) dst[iw] += row[iw];
          } else {
            for (int64_t iw = iw0; iw < iw1; ++iw) dst[iw * SW] += row[iw];
          }
        }
      }
    }
    roupconv::Requantize(acc.data(), static_cast<int>(out_h * out_w), scale[o], y_zero_point, y_lo, y_hi,
                         y + (n * M + o) * out_h * out_w);
  }
};

}  // namespace

void ROUPConvTransposeKernel::Run(OrtKernelContext* context, const Inputs& in,
                                  const std::function<uint8_t*(const std::vector<int64_t>&)>& allocate) const {
  Check(in);
  const Shape shape = Resolve(in.x_shape, in.w_shape);
  const int64_t N = in.x_shape[0], H = in.x_shape[2], W = in.x_shape[3];
  const int64_t Og = in.w_shape[1], KH = in.w_shape[2], KW = in.w_shape[3], M = Og * geometry_.group;
  uint8_t* y = allocate({N, M, shape.out[0], shape.out[1]});
  if (N == 0 || H == 0 || W == 0) return;
  std::shared_ptr<const WeightPlan> plan = plan_;
  if (!plan) plan = std::make_shared<const WeightPlan>(Plan(in.w, in.w_shape, in.w_zero_point, in.w_zero_point_size));
  if (plan->Cg * geometry_.group != in.w_shape[0] || plan->M != M * KH * KW) {
    throw OpError("the weight changed shape after the session was created");
  }

  // int32 accumulation, as QLinearConv's: an output pixel takes at most one column per tap.
  std::vector<float> scale(static_cast<size_t>(M));
  for (int64_t o = 0; o < M; ++o) {
    int64_t bound = in.bias ? std::abs(static_cast<int64_t>(in.bias[o])) : 0;
    for (int64_t t = 0; t < KH * KW; ++t) bound += plan->acc_bound[static_cast<size_t>(o * KH * KW + t)];
    if (bound > std::numeric_limits<int32_t>::max()) {
      throw OpError("the int32 accumulator of output channel " + std::to_string(o) + " can overflow (worst case " +
                    std::to_string(bound) + "); reduce the bias or split the layer");
    }
    const float product = in.x_scale * in.w_scale[in.w_scale_size == 1 ? 0 : o];  // float32, as onnxruntime
    scale[static_cast<size_t>(o)] = product / in.y_scale;
  }

  // The 1x1 product: no bias, no requantization (its scales are unused).
  const float one = 1.0f;
  Inputs product = in;
  product.w_shape = {plan->M, plan->Cg, 1, 1};
  product.w_scale = &one;
  product.w_scale_size = 1;
  product.x_scale = product.y_scale = 1.0f;
  product.bias = nullptr;
  product.bias_size = 0;
  Geometry pixels;
  pixels.out_h = H;
  pixels.out_w = W;
  std::vector<int32_t> cols(static_cast<size_t>(N * plan->M * H * W));
  Execute(context, product, *plan, pixels, nullptr, cols.data());

  Col2Im job;
  job.cols = cols.data();
  job.bias = in.bias;
  job.scale = scale.data();
  job.y = y;
  job.M = M;
  job.M1 = plan->M;
  job.Og = Og;
  job.KH = KH;
  job.KW = KW;
  job.H = H;
  job.W = W;
  job.SH = geometry_.strides[0];
  job.SW = geometry_.strides[1];
  job.DH = geometry_.dilations[0];
  job.DW = geometry_.dilations[1];
  job.top = shape.begin[0];
  job.left = shape.begin[1];
  job.out_h = shape.out[0];
  job.out_w = shape.out[1];
  job.y_zero_point = in.y_zero_point;
  job.y_lo = roupconv::IsSigned(y_type_) ? -128 : 0;
  job.y_hi = roupconv::IsSigned(y_type_) ? 127 : 255;
  const size_t tasks = static_cast<size_t>(N * M);
  roupconv::RunTasks(api_, context, job, tasks);
}

}  // namespace axonnx::roupconvtranspose
