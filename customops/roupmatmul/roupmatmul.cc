// The ROUPMatMul op: its checks, B's conv view (one filter per column, one conv group per distinct
// matrix of B), and the run: A transposed into conv layout, ROUPConv's Execute, y transposed back.
#include "roupmatmul/roupmatmul.h"

#include <algorithm>
#include <cmath>

#include "roupconv/requantize.h"
#include "roupconv/util.h"

namespace axonnx::roupmatmul {

using roupconv::WeightPlan;

namespace {

int64_t Product(const std::vector<int64_t>& dims, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= dims[i];
  return p;
}

// dst[c * ld_dst + r] = src[r * ld_src + c] for r < rows, c < cols, in 32 x 32 blocks.
void Transpose(const uint8_t* src, int64_t rows, int64_t cols, int64_t ld_src, uint8_t* dst,
               int64_t ld_dst) {
  constexpr int64_t kBlock = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t r1 = std::min(rows, r0 + kBlock);
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
      const int64_t c1 = std::min(cols, c0 + kBlock);
      for (int64_t c = c0; c < c1; ++c) {
        for (int64_t r = r0; r < r1; ++r) dst[c * ld_dst + r] = src[r * ld_src + c];
      }
    }
  }
}

}  // namespace

ROUPMatMulKernel::ROUPMatMulKernel(const OrtApi& api, const OrtKernelInfo* info,
                                   ONNXTensorElementDataType a_type, ONNXTensorElementDataType b_type,
                                   ONNXTensorElementDataType y_type)
    : ROUPConvKernel(api, info, a_type, b_type, y_type, kOpName) {
  KernelAttributes attrs(api, info);
  try {
    static const char* const kRequired[] = {"a", "a_scale", "a_zero_point", "b", "b_scale",
                                            "b_zero_point", "y_scale", "y_zero_point"};
    if (attrs.InputCount() < 8) {
      throw OpError("needs QLinearMatMul's 8 inputs (a, a_scale, a_zero_point, b, b_scale, "
                    "b_zero_point, y_scale, y_zero_point) and an optional bias, got " +
                    std::to_string(attrs.InputCount()));
    }
    for (size_t i = 0; i < 8; ++i) {
      if (attrs.InputName(i).empty()) {
        throw OpError(std::string("input ") + std::to_string(i) + " (" + kRequired[i] +
                      ") is required but the node leaves it out (an empty name)");
      }
    }
    // The base kernel read any conv attributes: they have no meaning for a matrix product.
    const roupconv::ConvAttributes plain;
    if (conv_.auto_pad != plain.auto_pad || conv_.strides != plain.strides || conv_.dilations != plain.dilations ||
        conv_.pads != plain.pads || !conv_.kernel_shape.empty() || conv_.group != plain.group) {
      throw OpError("has conv attributes (auto_pad, dilations, group, kernel_shape, pads or strides); "
                    "ROUPMatMul takes none: remove them");
    }
    // A constant B (fully connected) is checked and planned now, once.
    std::optional<TensorValue> b = attrs.ConstantInput(3);
    std::optional<TensorValue> zb = attrs.ConstantInput(5);
    if (b && zb) {
      CheckB(b->shape, zb->size());
      if (std::all_of(b->shape.begin(), b->shape.end(), [](int64_t d) { return d > 0; })) {
        constant_b_plan_ = std::make_shared<const WeightPlan>(
            PlanB(b->data<uint8_t>(), b->shape, zb->data<uint8_t>(), zb->size()));
      }
      constant_b_shape_ = b->shape;
    }
  } catch (const std::exception& e) {
    throw OpError(Prefix() + e.what());
  }
}

void ROUPMatMulKernel::CheckB(const std::vector<int64_t>& b_shape, size_t zero_points) const {
  if (b_shape.size() < 2) {
    throw OpError("b must have rank 2 or more ([..., K, N]), got shape " + ShapeString(b_shape));
  }
  const int64_t n = b_shape.back();
  if (zero_points != 1 && static_cast<int64_t>(zero_points) != n) {
    throw OpError("b_zero_point must be a scalar or hold one value per column of b (" +
                  std::to_string(n) + "), got " + std::to_string(zero_points) + " values");
  }
  if (index_) {
    const std::vector<int64_t>& s = index_->shape;
    bool fits = s.size() <= b_shape.size();
    for (size_t i = 0; fits && i < s.size(); ++i) {
      const int64_t d = s[s.size() - 1 - i], want = b_shape[b_shape.size() - 1 - i];
      fits = d == 1 || d == want;
    }
    if (!fits) {
      throw OpError("multiplier_index has shape " + ShapeString(s) + ", which does not broadcast to b's shape " +
                    ShapeString(b_shape) + " ([..., K, N]; each dim 1 or b's)");
    }
  }
}

// B's conv view: matrix g of B (its batch dims flattened) is conv group g, its column n filter
// g * N + n over K input channels; the multiplier index and the zero points follow it.
WeightPlan ROUPMatMulKernel::PlanB(const uint8_t* b, const std::vector<int64_t>& b_shape,
                                   const uint8_t* zero_point, size_t zero_points) const {
  const size_t rank = b_shape.size();
  const int64_t K = b_shape[rank - 2], N = b_shape[rank - 1], G = Product(b_shape, 0, rank - 2);
  std::vector<uint8_t> w(static_cast<size_t>(G * N * K));
  for (int64_t g = 0; g < G; ++g) Transpose(b + g * K * N, K, N, N, w.data() + g * N * K, K);
  std::vector<uint8_t> index;
  if (index_) {
    // Broadcast the index to b's shape (right-aligned; dims of 1 repeat), then lay it out as w.
    const std::vector<int64_t>& s = index_->shape;
    std::vector<int64_t> stride(rank, 0);
    int64_t step = 1;
    for (size_t i = 0; i < s.size(); ++i) {
      const size_t dim = rank - 1 - i;
      const int64_t d = s[s.size() - 1 - i];
      stride[dim] = d == 1 ? 0 : step;
      step *= d;
    }
    const uint8_t* src = index_->data<uint8_t>();
    index.resize(w.size());
    for (int64_t g = 0; g < G; ++g) {
      int64_t rest = g, base = 0;  // matrix g's offset in the index
      for (size_t d = rank - 2; d-- > 0;) {
        base += (rest % b_shape[d]) * stride[d];
        rest /= b_shape[d];
      }
      uint8_t* out = index.data() + g * N * K;
      for (int64_t k = 0; k < K; ++k) {
        const uint8_t* row = src + base + k * stride[rank - 2];
        for (int64_t n = 0; n < N; ++n) out[n * K + k] = row[n * stride[rank - 1]];
      }
    }
  }
  std::vector<uint8_t> zero(static_cast<size_t>(zero_points == 1 ? 1 : G * N));
  for (size_t i = 0; i < zero.size(); ++i) zero[i] = zero_point[zero_points == 1 ? 0 : i % N];
  return BuildPlan(w.data(), {G * N, K, 1, 1}, zero.data(), zero.size(), G,
                   index_ ? index.data() : nullptr);
}

void ROUPMatMulKernel::RunMatMul(OrtKernelContext* context, const MatInputs& in,
                                 const std::function<uint8_t*(const std::vector<int64_t>&)>& allocate) const {
  const std::vector<int64_t>&as = in.a_shape, &bs = in.b_shape;
  if (as.size() < 2 || bs.size() < 2) {
    throw OpError("a and b need rank 2 or more, got shapes " + ShapeString(as) + " and " + ShapeString(bs));
  }
  const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
  if (bs[bs.size() - 2] != K) {
    throw OpError("a " + ShapeString(as) + " and b " + ShapeString(bs) + " do not chain: a has " +
                  std::to_string(K) + " columns, b " + std::to_string(bs[bs.size() - 2]) + " rows");
  }
  if (constant_b_plan_ || !constant_b_shape_.empty()) {
    if (bs != constant_b_shape_) throw OpError("b changed shape after the session was created");
  } else {
    CheckB(bs, in.b_zero_point_size);
  }
  const auto positive = [](float v) { return std::isfinite(v) && v > 0.0f; };
  if (!positive(in.a_scale) || !positive(in.y_scale) ||
      !std::all_of(in.b_scale, in.b_scale + in.b_scale_size, positive)) {
    throw OpError("a_scale, b_scale and y_scale must be positive finite numbers");
  }
  if (in.b_scale_size != 1 && static_cast<int64_t>(in.b_scale_size) != N) {
    throw OpError("b_scale must be a scalar or hold one value per column of b (" + std::to_string(N) +
                  "), got " + std::to_string(in.b_scale_size) + " values");
  }
  if (in.bias && static_cast<int64_t>(in.bias_size) != N) {
    throw OpError("the bias must hold one value per column of b (" + std::to_string(N) + "), got " +
                  std::to_string(in.bias_size));
  }

  // numpy broadcasting of the batch dims.
  const size_t ra = as.size() - 2, rb = bs.size() - 2, R = std::max(ra, rb);
  std::vector<int64_t> ab(R, 1), bb(R, 1), out_batch(R);
  std::copy(as.begin(), as.begin() + ra, ab.begin() + (R - ra));
  std::copy(bs.begin(), bs.begin() + rb, bb.begin() + (R - rb));
  for (size_t d = 0; d < R; ++d) {
    if (ab[d] != bb[d] && ab[d] != 1 && bb[d] != 1) {
      throw OpError("the batch dims of a " + ShapeString(as) + " and b " + ShapeString(bs) + " do not broadcast");
    }
    out_batch[d] = ab[d] == 1 ? bb[d] : ab[d];
  }
  std::vector<int64_t> out_shape = out_batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  uint8_t* y = allocate(out_shape);
  const int64_t total = Product(out_batch, 0, R);
  if (total == 0 || M == 0 || N == 0) return;

  const int y_lo = roupconv::IsSigned(y_type_) ? -128 : 0, y_hi = roupconv::IsSigned(y_type_) ? 127 : 255;
  if (K == 0) {  // every product is empty: y is the requantized bias
    for (int64_t e = 0; e < total * M * N; ++e) {
      const int64_t n = e % N;
      const int32_t acc = in.bias ? in.bias[n] : 0;
      const float scale = in.a_scale * in.b_scale[in.b_scale_size == 1 ? 0 : n] / in.y_scale;
      roupconv::Requantize(&acc, 1, scale, in.y_zero_point, y_lo, y_hi, y + e);
    }
    return;
  }

  WeightPlan run_plan;
  const WeightPlan* plan = constant_b_plan_.get();
  if (!plan) {
    run_plan = PlanB(in.b, bs, in.b_zero_point, in.b_zero_point_size);
    plan = &run_plan;
  }

  // Each output matrix o is (image, group g): g the matrix of B it uses, the image counting the
  // matrices of A that share it. One group (B a single matrix): every row of A is one pixel of a
  // single image, the largest GEMM.
  const int64_t G = Product(bb, 0, R), images = total / G;
  std::vector<int64_t> a_of(static_cast<size_t>(total)), slot_of(static_cast<size_t>(total));
  for (int64_t o = 0; o < total; ++o) {
    int64_t rest = o, a_off = 0, a_step = 1, g = 0, g_step = 1, img = 0, img_step = 1;
    for (size_t d = R; d-- > 0;) {
      const int64_t i = rest % out_batch[d];
      rest /= out_batch[d];
      if (ab[d] != 1) a_off += i * a_step;
      a_step *= ab[d];
      if (bb[d] != 1) {
        g += i * g_step;
        g_step *= bb[d];
      } else {
        img += i * img_step;
        img_step *= out_batch[d];
      }
    }
    a_of[static_cast<size_t>(o)] = a_off;
    slot_of[static_cast<size_t>(o)] = img * G + g;
  }
  const bool fold = G == 1;
  const int64_t H = fold ? images * M : M, conv_images = fold ? 1 : images;
  std::vector<uint8_t> x(static_cast<size_t>(total * K * M));
  for (int64_t o = 0; o < total; ++o) {
    const uint8_t* a = in.a + a_of[static_cast<size_t>(o)] * M * K;
    const int64_t slot = slot_of[static_cast<size_t>(o)];
    if (fold) {
      Transpose(a, M, K, K, x.data() + slot * M, H);
    } else {
      Transpose(a, M, K, K, x.data() + slot * K * M, M);
    }
  }

  Inputs conv{};
  conv.x = x.data();
  // The rows of A are the pixels of one image row (1 x H): 16 consecutive rows make a GEMM tile
  // (as H x 1, each "row" of one pixel would fill a tile of its own).
  conv.x_shape = {conv_images, G * K, 1, H};
  conv.x_scale = in.a_scale;
  conv.x_zero_point = in.a_zero_point;
  conv.w = nullptr;
  conv.w_shape = {G * N, K, 1, 1};
  std::vector<float> scales;
  std::vector<int32_t> bias;
  conv.w_scale = in.b_scale;
  conv.w_scale_size = in.b_scale_size;
  if (in.b_scale_size != 1 && G > 1) {  // per column, repeated for every group
    for (int64_t i = 0; i < G * N; ++i) scales.push_back(in.b_scale[i % N]);
    conv.w_scale = scales.data();
    conv.w_scale_size = scales.size();
  }
  if (in.bias) {
    for (int64_t i = 0; i < G * N; ++i) bias.push_back(in.bias[i % N]);
    conv.bias = bias.data();
    conv.bias_size = bias.size();
  }
  conv.y_scale = in.y_scale;
  conv.y_zero_point = in.y_zero_point;
  Geometry geometry;
  geometry.out_h = 1;
  geometry.out_w = H;
  std::vector<uint8_t> conv_y(static_cast<size_t>(total * N * M));
  Execute(context, conv, *plan, geometry, conv_y.data());

  for (int64_t o = 0; o < total; ++o) {
    const int64_t slot = slot_of[static_cast<size_t>(o)];
    uint8_t* out = y + o * M * N;
    if (fold) {
      Transpose(conv_y.data() + slot * M, N, M, H, out, N);
    } else {
      Transpose(conv_y.data() + slot * N * M, N, M, M, out, N);
    }
  }
}

}  // namespace axonnx::roupmatmul
