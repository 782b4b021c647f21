// The ROUPMatMul op: its checks, B's conv view (one filter per column, one conv group per distinct
// matrix of B), and the run: A transposed into conv layout, ROUPConv's Execute, y transposed back.
#include "roupmatmul/roupmatmul.h"

#include <algorithm>
#include <cmath>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "roupconv/gemm_u8.h"
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

#ifdef __SSE2__
// A 16 x 16 byte block: four rounds of out[2i + h] = unpack{lo,hi}(in[i], in[i + 8]), each
// rotating the 8-bit (row, column) address left by one bit; four rotations swap row and column.
void Transpose16(const uint8_t* src, int64_t ld_src, uint8_t* dst, int64_t ld_dst) {
  __m128i a[16], b[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i * ld_src));
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 8; ++i) {
      b[2 * i] = _mm_unpacklo_epi8(a[i], a[i + 8]);
      b[2 * i + 1] = _mm_unpackhi_epi8(a[i], a[i + 8]);
    }
    std::copy(b, b + 16, a);
  }
  for (int i = 0; i < 16; ++i) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i * ld_dst), a[i]);
}
#endif

// dst[c * ld_dst + r] = src[r * ld_src + c] for r < rows, c < cols, in 16 x 16 blocks (bytes; or
// the int32 form's accumulators).
template <typename T>
void Transpose(const T* src, int64_t rows, int64_t cols, int64_t ld_src, T* dst, int64_t ld_dst) {
  constexpr int64_t kBlock = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t r1 = std::min(rows, r0 + kBlock);
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
      const int64_t c1 = std::min(cols, c0 + kBlock);
#ifdef __SSE2__
      if constexpr (sizeof(T) == 1) {
        if (r1 - r0 == kBlock && c1 - c0 == kBlock) {
          Transpose16(src + r0 * ld_src + c0, ld_src, dst + c0 * ld_dst + r0, ld_dst);
          continue;
        }
      }
#endif
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
    : ROUPConvKernel(api, info, a_type, b_type, y_type, kOpName),
      integer_output_(y_type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32),
      b_flip_(roupconv::IsSigned(b_type) ? 0x80 : 0) {
  KernelAttributes attrs(api, info);
  try {
    // The lean plan's tables: per ROUP multiplier, each slot's value for every b (BuildPlan's terms).
    slot_tables_.resize(multipliers().size());
    for (size_t c = 0; c < multipliers().size(); ++c) {
      const roupconv::Multiplier& mult = multipliers()[c];
      if (mult.kind != roupconv::MultiplierKind::kRoup) continue;
      std::vector<SlotTable> dense(static_cast<size_t>(Slots()));
      for (int slot = 0; slot < Slots(); ++slot) dense[static_cast<size_t>(slot)] = {slot, {}};
      for (int b = -256; b < 256; ++b) {
        for (int j = mult.perforation; j < roupconv::kDigits; ++j) {
          const auto [slot, value] = RoupTerm(mult, j, b);
          dense[static_cast<size_t>(slot)].value[static_cast<size_t>(b + 256)] += static_cast<int16_t>(value);
        }
      }
      for (const SlotTable& t : dense) {
        if (std::any_of(t.value.begin(), t.value.end(), [](int16_t v) { return v != 0; })) slot_tables_[c].push_back(t);
      }
    }
    const uint8_t* index = IndexData();
    const size_t index_size = index_ ? index_->size() : 1;
    const int first = index ? index[0] : 0;
    if ((!index || std::all_of(index, index + index_size, [first](uint8_t v) { return v == first; })) &&
        multipliers()[static_cast<size_t>(first)].kind != roupconv::MultiplierKind::kLut) {
      uniform_multiplier_ = first;
    }
    static const char* const kRequired[] = {"a", "a_scale", "a_zero_point", "b", "b_scale",
                                            "b_zero_point", "y_scale", "y_zero_point"};
    const auto given = [&attrs](size_t i) { return i < attrs.InputCount() && !attrs.InputName(i).empty(); };
    // The int32 form (MatMulInteger's output) is the kernel of an int32 y: one without y_zero_point.
    const size_t required = integer_output_ ? 6 : 8;
    for (size_t i = 0; i < required; ++i) {
      if (!given(i)) {
        throw OpError(std::string("input ") + std::to_string(i) + " (" + kRequired[i] +
                      ") is required but the node leaves it out; ROUPMatMul takes QLinearMatMul's 8 "
                      "inputs and an optional bias, or (int32 output) only the first 6");
      }
    }
    if (integer_output_ && (given(6) || given(7) || given(8))) {
      throw OpError("the int32 form (no y_zero_point) takes no y_scale or bias: give y_scale and "
                    "y_zero_point for a requantized y, or remove y_scale and the bias");
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
  // The int32 form reads Execute's accumulators, which a direct (depthwise) plan does not give.
  return BuildPlan(w.data(), {G * N, K, 1, 1}, zero.data(), zero.size(), G,
                   index_ ? index.data() : nullptr, /*allow_direct=*/!integer_output_);
}

std::unique_ptr<ROUPMatMulKernel::RunBuffers> ROUPMatMulKernel::AcquireBuffers() const {
  std::lock_guard<std::mutex> lock(buffers_mutex_);
  if (free_buffers_.empty()) return std::make_unique<RunBuffers>();
  std::unique_ptr<RunBuffers> buffers = std::move(free_buffers_.back());
  free_buffers_.pop_back();
  return buffers;
}

void ROUPMatMulKernel::ReleaseBuffers(std::unique_ptr<RunBuffers> buffers) const {
  std::lock_guard<std::mutex> lock(buffers_mutex_);
  free_buffers_.push_back(std::move(buffers));
}

void ROUPMatMulKernel::PlanBLean(const uint8_t* b, int64_t G, int64_t K, int64_t N, const uint8_t* zero_point,
                                 size_t zero_points, RunBuffers& buffers) const {
  using roupconv::kQuad;
  WeightPlan& plan = buffers.plan;
  const int64_t M = G * N, Kq = roupconv::RoundUp(K, kQuad);
  plan.M = M;
  plan.Cg = plan.K = K;
  plan.KH = plan.KW = 1;
  plan.Kp = roupconv::RoundUp(K, 2);
  plan.Kq = Kq;
  plan.group = G;
  plan.Mg = N;
  plan.direct = false;
  plan.terms.clear();
  plan.quad_order.resize(static_cast<size_t>(Kq / kQuad));
  for (size_t q = 0; q < plan.quad_order.size(); ++q) plan.quad_order[q] = static_cast<int32_t>(q);  // one tap
  // No LUT positions: the lean plan takes one multiplier that is not a LUT.
  plan.luts.k.clear();
  plan.luts.row.clear();
  roupconv::FinishLutTaps(plan.luts, std::vector<int64_t>(static_cast<size_t>(M), 0), K);
  plan.acc_bound.assign(static_cast<size_t>(M), 0);

  // Per slot two GEMMs: rows 2^h W' with W' int8, and the low bits of rows split in two (below).
  const std::vector<SlotTable>& tables = slot_tables_[static_cast<size_t>(uniform_multiplier_)];
  plan.gemms.resize(2 * tables.size());
  for (size_t ti = 0; ti < tables.size(); ++ti) {
    for (size_t part = 0; part < 2; ++part) {
      WeightPlan::Gemm& gemm = plan.gemms[2 * ti + part];
      gemm.transform = SlotTransform(tables[ti].slot);
      for (auto* v : {&gemm.rows, &gemm.rows8, &gemm.shift8, &gemm.rowsum8}) {
        v->resize(static_cast<size_t>(G));
        for (auto& x : *v) x.clear();
      }
      gemm.weights.resize(static_cast<size_t>(G));
      for (auto& x : gemm.weights) x.clear();
      gemm.weights8.resize(static_cast<size_t>(G));
      for (auto& x : gemm.weights8) x.clear();
    }
  }
  // zero[n]: 256 minus column n's zero-point index, so that value[index + zero[n]] is its term.
  buffers.zero.resize(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) buffers.zero[static_cast<size_t>(n)] = 256 - (zero_point[zero_points == 1 ? 0 : n] ^ b_flip_);
  buffers.values.assign(static_cast<size_t>(N * Kq), 0);  // [n][Kq]: B's column n, k-padded
  int16_t* values = buffers.values.data();
  buffers.bt.resize(static_cast<size_t>(K * N));
  const int32_t* zero = buffers.zero.data();

  for (size_t ti = 0; ti < tables.size(); ++ti) {
    const int16_t* table = tables[ti].value.data();
    bool identity = true;
    for (int v = 0; v < 512 && identity; ++v) identity = table[v] == v - 256;
    const int64_t bound = SlotOperandBound(tables[ti].slot);
    WeightPlan::Gemm &main = plan.gemms[2 * ti], &low = plan.gemms[2 * ti + 1];
    const int log_scale = roupconv::U8LogScale(main.transform);
    const int max_pair = roupconv::MaxPairSum(roupconv::U8Bound(main.transform));
    for (int64_t g = 0; g < G; ++g) {
      Transpose(b + g * K * N, K, N, N, buffers.bt.data(), K);  // [n][k]: rows read contiguously
      for (int64_t n = 0; n < N; ++n) {
        const uint8_t* in = buffers.bt.data() + n * K;
        int16_t* out = values + n * Kq;
        const int32_t z = zero[n];
        if (identity) {  // value = b (exact plans): vectorizes
          for (int64_t k = 0; k < K; ++k) out[k] = static_cast<int16_t>((in[k] ^ b_flip_) + z - 256);
        } else {
          for (int64_t k = 0; k < K; ++k) out[k] = table[(in[k] ^ b_flip_) + z];
        }
      }
      const size_t gs = static_cast<size_t>(g);
      for (int64_t n = 0; n < N; ++n) {
        const int16_t* r = values + n * Kq;
        int bits = 0;
        int64_t magnitude = 0;
        for (int64_t k = 0; k < K; ++k) {
          bits |= r[k];
          magnitude += std::abs(r[k]);
        }
        if (!bits) continue;
        plan.acc_bound[static_cast<size_t>(g * N + n)] += bound * magnitude;
        const int h = __builtin_ctz(static_cast<unsigned>(bits));  // the row is 2^h times an odd-entried row
        // The u8 GEMM takes r >> h when its pairs fit int8 (and MaxPairSum); a row of 9-bit values
        // (a zero point away from the middle) as v = 2 (v >> 1) + (v & 1), v = r >> h: two int8 rows.
        // Branch-free scans (they vectorize): the range of v, and the largest pair sums.
        int lo = 0, hi = 0, pair = 0, half_pair = 0;
        for (int64_t k = 0; k < Kq; k += 2) {
          const int v0 = r[k] >> h, v1 = r[k + 1] >> h;
          lo = std::min(lo, std::min(v0, v1));
          hi = std::max(hi, std::max(v0, v1));
          pair = std::max(pair, std::abs(v0) + std::abs(v1));
          half_pair = std::max(half_pair, std::abs(v0 >> 1) + std::abs(v1 >> 1));
        }
        const bool fits = lo >= -128 && hi <= 127 && pair <= max_pair;
        const bool splits = lo >= -256 && hi <= 255 && half_pair <= max_pair;
        const auto emit = [&](WeightPlan::Gemm& gemm, int down, bool odd_part) {
          std::vector<int8_t>& out = gemm.weights8[gs];
          const size_t at = out.size();
          out.resize(at + static_cast<size_t>(Kq));
          int32_t sum = 0;
          for (int64_t k = 0; k < Kq; ++k) {
            const int v = r[k] >> h;
            const int w = odd_part ? v & 1 : v >> down;
            out[at + static_cast<size_t>(k)] = static_cast<int8_t>(w);
            sum += w;
          }
          gemm.rows8[gs].push_back(static_cast<int32_t>(n));
          gemm.shift8[gs].push_back(h + down + log_scale);
          gemm.rowsum8[gs].push_back(sum);
        };
        if (fits) {
          emit(main, 0, false);
        } else if (splits) {
          emit(main, 1, false);
          emit(low, 0, true);
        } else {  // the int16 GEMM
          main.rows[gs].push_back(static_cast<int32_t>(n));
          main.weights[gs].insert(main.weights[gs].end(), r, r + plan.Kp);
        }
      }
    }
  }
  // Drop the GEMMs with no rows: Execute maps the activations once per GEMM.
  const auto empty = [](const WeightPlan::Gemm& gemm) {
    const auto none = [](const auto& groups) {
      return std::all_of(groups.begin(), groups.end(), [](const auto& v) { return v.empty(); });
    };
    return none(gemm.rows8) && none(gemm.rows);
  };
  size_t kept = 0;
  for (size_t gi = 0; gi < plan.gemms.size(); ++gi) {
    if (empty(plan.gemms[gi])) continue;
    if (kept != gi) std::swap(plan.gemms[kept], plan.gemms[gi]);
    ++kept;
  }
  plan.gemms.resize(kept);
}

void ROUPMatMulKernel::RunMatMul(OrtKernelContext* context, const Inputs& in,
                                 const std::function<uint8_t*(const std::vector<int64_t>&)>& allocate) const {
  const std::vector<int64_t>&as = in.x_shape, &bs = in.w_shape;
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
    CheckB(bs, in.w_zero_point_size);
  }
  const auto positive = [](float v) { return std::isfinite(v) && v > 0.0f; };
  if (!positive(in.x_scale) || (!integer_output_ && !positive(in.y_scale)) ||
      !std::all_of(in.w_scale, in.w_scale + in.w_scale_size, positive)) {
    throw OpError(integer_output_ ? "a_scale and b_scale must be positive finite numbers"
                                  : "a_scale, b_scale and y_scale must be positive finite numbers");
  }
  if (in.w_scale_size != 1 && static_cast<int64_t>(in.w_scale_size) != N) {
    throw OpError("b_scale must be a scalar or hold one value per column of b (" + std::to_string(N) +
                  "), got " + std::to_string(in.w_scale_size) + " values");
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
  if (K == 0 && integer_output_) {  // every product is empty
    std::fill_n(reinterpret_cast<int32_t*>(y), total * M * N, 0);
    return;
  }
  if (K == 0) {  // every product is empty: y is the requantized bias
    for (int64_t e = 0; e < total * M * N; ++e) {
      const int64_t n = e % N;
      const int32_t acc = in.bias ? in.bias[n] : 0;
      const float scale = in.x_scale * in.w_scale[in.w_scale_size == 1 ? 0 : n] / in.y_scale;
      roupconv::Requantize(&acc, 1, scale, in.y_zero_point, y_lo, y_hi, y + e);
    }
    return;
  }

  // Buffers kept across runs; returned to the pool however this run ends.
  struct Lease {
    const ROUPMatMulKernel* kernel;
    std::unique_ptr<RunBuffers> buffers;
    ~Lease() { kernel->ReleaseBuffers(std::move(buffers)); }
  } lease{this, AcquireBuffers()};
  RunBuffers& buffers = *lease.buffers;
  const WeightPlan* plan = constant_b_plan_.get();
  if (!plan) {
    if (uniform_multiplier_ >= 0) {
      PlanBLean(in.w, Product(bs, 0, bs.size() - 2), K, N, in.w_zero_point, in.w_zero_point_size, buffers);
    } else {
      buffers.plan = PlanB(in.w, bs, in.w_zero_point, in.w_zero_point_size);
    }
    plan = &buffers.plan;
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
  std::vector<uint8_t>& x = buffers.x;
  x.resize(static_cast<size_t>(total * K * M));
  for (int64_t o = 0; o < total; ++o) {
    const uint8_t* a = in.x + a_of[static_cast<size_t>(o)] * M * K;
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
  conv.x_scale = in.x_scale;
  conv.x_zero_point = in.x_zero_point;
  conv.w = nullptr;
  conv.w_shape = {G * N, K, 1, 1};
  std::vector<float> scales;
  std::vector<int32_t> bias;
  conv.w_scale = in.w_scale;
  conv.w_scale_size = in.w_scale_size;
  if (in.w_scale_size != 1 && G > 1) {  // per column, repeated for every group
    for (int64_t i = 0; i < G * N; ++i) scales.push_back(in.w_scale[i % N]);
    conv.w_scale = scales.data();
    conv.w_scale_size = scales.size();
  }
  if (in.bias) {
    for (int64_t i = 0; i < G * N; ++i) bias.push_back(in.bias[i % N]);
    conv.bias = bias.data();
    conv.bias_size = bias.size();
  }
  conv.y_scale = integer_output_ ? 1.0f : in.y_scale;  // the int32 form requantizes nothing
  conv.y_zero_point = in.y_zero_point;
  Geometry geometry;
  geometry.out_h = 1;
  geometry.out_w = H;
  const auto TransposeBack = [&](const auto* conv_y, auto* out_y) {
    for (int64_t o = 0; o < total; ++o) {
      const int64_t slot = slot_of[static_cast<size_t>(o)];
      auto* out = out_y + o * M * N;
      if (fold) {
        Transpose(conv_y + slot * M, N, M, H, out, N);
      } else {
        Transpose(conv_y + slot * N * M, N, M, M, out, N);
      }
    }
  };
  if (integer_output_) {  // Execute's accumulators, [image][g * N + n][pixel], transposed back as y
    std::vector<int32_t> acc(static_cast<size_t>(total * N * M));
    Execute(context, conv, *plan, geometry, nullptr, acc.data());
    TransposeBack(acc.data(), reinterpret_cast<int32_t*>(y));
    return;
  }
  std::vector<uint8_t>& conv_y = buffers.y;
  conv_y.resize(static_cast<size_t>(total * N * M));
  Execute(context, conv, *plan, geometry, conv_y.data());
  TransposeBack(conv_y.data(), y);
}

}  // namespace axonnx::roupmatmul
