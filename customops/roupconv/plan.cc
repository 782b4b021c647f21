// The weight plan of a ROUPConv node (roupconv.h WeightPlan): the per-weight-value LUT error rows,
// and the decomposition of the weight into one GEMM (or direct-kernel term) per rounding width or
// Booth digit, its rows packed for the u8 x s8 GEMM or the int16 one. Built once for a constant
// weight.
#include <algorithm>
#include <array>
#include <cstdlib>
#include <limits>

#include "roupconv/roupconv.h"
#include "roupconv/util.h"

namespace axonnx::roupconv {

void ROUPConvKernel::BuildLutRows() {
  // Error rows, one per (LUT l, weight index v), indexed by the activation index u:
  //   row[l * 256 + v][u] = T[a][b] - a * b, with (a, b) = (u, v) when the weight is encoded and
  // (v, u) otherwise, each taken in its domain (signed: index - 128; unsigned: index).
  const size_t R = lut_tables_.size() * kTableSize;
  lut_rows_.assign(R * kTableSize, 0);
  lut_bytes_.assign(R * 3 * kTableSize + 64, 0);
  lut_planes16_ = lut_bytes_.data() + (-reinterpret_cast<uintptr_t>(lut_bytes_.data()) & 63);
  lut_planes8_ = lut_planes16_ + R * 2 * kTableSize;
  lut_fits_.assign(R, 3);
  lut_worst_.assign(R, 0);
  for (size_t l = 0; l < lut_tables_.size(); ++l) {
    const int a_off = lut_signedness_[2 * l] ? 128 : 0, b_off = lut_signedness_[2 * l + 1] ? 128 : 0;
    const std::vector<int32_t>& table = lut_tables_[l];
    for (int v = 0; v < kTableSize; ++v) {
      const size_t r = l * kTableSize + static_cast<size_t>(v);
      for (int u = 0; u < kTableSize; ++u) {
        const int a = encode_activation_ ? v : u, b = encode_activation_ ? u : v;
        const int64_t error = static_cast<int64_t>(table[a * kTableSize + b]) -
                              static_cast<int64_t>(a - a_off) * (b - b_off);
        if (error < std::numeric_limits<int32_t>::min() || error > std::numeric_limits<int32_t>::max()) {
          throw OpError("lut_tables entry " + std::to_string(l) + " holds products too large for int32");
        }
        const int32_t e = static_cast<int32_t>(error);
        lut_rows_[r * kTableSize + u] = e;
        lut_worst_[r] = std::max<int64_t>(lut_worst_[r], std::abs(error));
        // The same row as bytes, where it fits (the error kernels look bytes up in registers).
        if (e < std::numeric_limits<int16_t>::min() || e > std::numeric_limits<int16_t>::max()) lut_fits_[r] = 0;
        if (e < -128 || e > 127) lut_fits_[r] &= ~2;
        lut_planes16_[(2 * r) * kTableSize + u] = static_cast<uint8_t>(e & 0xFF);
        lut_planes16_[(2 * r + 1) * kTableSize + u] = static_cast<uint8_t>(((e >> 8) + 128) & 0xFF);
      }
    }
  }
  // The int8 rows over their periods (LutTables::planes8): of mul8u_2HH's rows, 78% repeat every
  // 128 activation indices and 41% every 64.
  lut_at8_.assign(R, 0);
  lut_lines8_.assign(R, 0);
  int32_t lines = 0;
  for (size_t r = 0; r < R; ++r) {
    if (!(lut_fits_[r] & 2)) continue;
    const int32_t* row = lut_rows_.data() + r * kTableSize;
    int period = kTableSize;
    while (period > 64 && std::equal(row, row + kTableSize - period / 2, row + period / 2)) period /= 2;
    lut_at8_[r] = lines;
    lut_lines8_[r] = static_cast<uint8_t>(period / 64);
    for (int u = 0; u < period; ++u) lut_planes8_[static_cast<size_t>(lines) * 64 + static_cast<size_t>(u)] = static_cast<uint8_t>(row[u] + 128);
    lines += period / 64;
  }
}

XTransform ROUPConvKernel::SlotTransform(int slot) const {
  XTransform t;
  t.kind = encode_activation_ ? XTransform::Kind::kDigit : XTransform::Kind::kRound;
  t.param = slot;
  if (encode_activation_) t.shift = 2 * slot - WeightDigitExponent(slot);
  return t;
}

int64_t ROUPConvKernel::SlotOperandBound(int slot) const {
  // A rounded 9-bit activation, or a Booth digit (|d| <= 2) times 2^shift.
  return encode_activation_ ? int64_t{2} << (2 * slot - WeightDigitExponent(slot)) : 256;
}

std::pair<int, int> ROUPConvKernel::RoupTerm(const Multiplier& mult, int j, int b) const {
  // Weight encoded: Booth digit j of b joins the GEMM of its rounding width; activation
  // encoded: round_{r_j}(b) joins the GEMM of digit j.
  if (encode_activation_) return {j, RoundHalfUp(b, mult.width[j]) * (1 << WeightDigitExponent(j))};
  return {mult.width[j], BoothDigit(b, j) * (1 << (2 * j))};
}

WeightPlan ROUPConvKernel::BuildPlan(const uint8_t* w, const std::vector<int64_t>& w_shape,
                                     const uint8_t* w_zero_point, size_t w_zero_point_size,
                                     int64_t group, const uint8_t* index, bool allow_direct) const {
  WeightPlan plan;
  plan.M = w_shape[0];
  plan.Cg = w_shape[1];
  plan.KH = w_shape[2];
  plan.KW = w_shape[3];
  plan.K = plan.Cg * plan.KH * plan.KW;
  plan.Kp = RoundUp(plan.K, 2);
  plan.Kq = plan.KH * plan.KW * RoundUp(plan.Cg, kQuad);
  plan.group = group;
  plan.Mg = plan.M / plan.group;
  const int64_t M = plan.M, K = plan.K;

  // One GEMM per rounding width r (weight encoded) or per Booth digit j (activation encoded).
  const int slots = Slots();
  std::vector<std::vector<int32_t>> dense(static_cast<size_t>(slots));
  const auto cell = [&](int slot, int64_t m, int64_t k) -> int32_t& {
    std::vector<int32_t>& d = dense[static_cast<size_t>(slot)];
    if (d.empty()) d.assign(static_cast<size_t>(M * K), 0);
    return d[static_cast<size_t>(m * K + k)];
  };

  // Each ROUP multiplier's terms (slot, value) for every zero-point-free weight b in [-256, 255],
  // computed once and looked up per weight: activation weights are planned on every run.
  struct Terms {
    int count = 0;
    std::array<int, kDigits> slot{}, value{};
  };
  std::vector<std::vector<Terms>> roup_terms(multipliers_.size());
  for (size_t c = 0; c < multipliers_.size(); ++c) {
    const Multiplier& mult = multipliers_[c];
    if (mult.kind != MultiplierKind::kRoup) continue;
    roup_terms[c].resize(512);
    for (int b = -256; b < 256; ++b) {
      Terms& t = roup_terms[c][static_cast<size_t>(b + 256)];
      for (int j = mult.perforation; j < kDigits; ++j) {
        const auto [slot, value] = RoupTerm(mult, j, b);
        if (value) {
          t.slot[static_cast<size_t>(t.count)] = slot;
          t.value[static_cast<size_t>(t.count++)] = value;
        }
      }
    }
  }

  plan.luts.tables = LutTables{lut_rows_.data(), lut_planes16_, lut_planes8_, lut_at8_.data(), lut_lines8_.data(),
                               lut_fits_.data()};
  std::vector<int64_t> lut_count(static_cast<size_t>(M), 0);
  for (int64_t m = 0; m < M; ++m) {
    const int zw = w_zero_point[w_zero_point_size == 1 ? 0 : m] ^ w_flip_;  // its weight index
    for (int64_t k = 0; k < K; ++k) {
      const int v = w[m * K + k] ^ w_flip_;  // weight index
      const int b = v - zw;                  // zero-point-free weight, 9 bits signed
      const Multiplier& mult = multipliers_[index ? index[m * K + k] : 0];
      switch (mult.kind) {
        case MultiplierKind::kSkip:
          break;
        case MultiplierKind::kLut:
          // The exact product (x - zx)(w - zw) joins the exact group (it is the table's value
          // with SPEC's zero-point corrections applied); the gather adds the table's error.
          if (encode_activation_) {
            for (int j = 0; j < kDigits; ++j) cell(j, m, k) += b * (1 << WeightDigitExponent(j));
          } else {
            cell(0, m, k) += b;
          }
          plan.luts.k.push_back(static_cast<int32_t>(k));
          plan.luts.row.push_back(mult.lut * kTableSize + v);
          ++lut_count[static_cast<size_t>(m)];
          break;
        case MultiplierKind::kRoup: {
          // Weight encoded: Booth digit j of b joins the GEMM of its rounding width; activation
          // encoded: round_{r_j}(b) joins the GEMM of digit j (roup_terms).
          const Terms& t = roup_terms[index ? index[m * K + k] : 0][static_cast<size_t>(b + 256)];
          for (int i = 0; i < t.count; ++i) cell(t.slot[static_cast<size_t>(i)], m, k) += t.value[static_cast<size_t>(i)];
          break;
        }
      }
    }
  }

  FinishLutTaps(plan.luts, lut_count, K);

  // The accumulator's worst case: |GEMM operand| <= 256 (a rounded 9-bit activation) or
  // 2 * 2^shift (a Booth digit), times each decomposed weight, plus each LUT tap's largest error.
  plan.acc_bound.assign(static_cast<size_t>(M), 0);
  for (int slot = 0; slot < slots; ++slot) {
    const std::vector<int32_t>& d = dense[static_cast<size_t>(slot)];
    const int64_t operand = SlotOperandBound(slot);
    if (d.empty()) continue;
    for (int64_t m = 0; m < M; ++m) {  // no division per weight: plans are built per run for activations
      int64_t sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += std::abs(d[static_cast<size_t>(m * K + k)]);
      plan.acc_bound[static_cast<size_t>(m)] += operand * sum;
    }
  }
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t i = plan.luts.start[static_cast<size_t>(m)]; i < plan.luts.start[static_cast<size_t>(m) + 1]; ++i) {
      plan.acc_bound[static_cast<size_t>(m)] += lut_worst_[static_cast<size_t>(plan.luts.row[static_cast<size_t>(i)])];
    }
  }

  if (plan.Cg == 1 && allow_direct) {
    // Every output channel reads one input channel: the direct kernel, one term per slot.
    plan.direct = true;
    for (int slot = 0; slot < slots; ++slot) {
      std::vector<int32_t>& d = dense[static_cast<size_t>(slot)];
      if (d.empty() || std::all_of(d.begin(), d.end(), [](int32_t v) { return v == 0; })) continue;
      WeightPlan::Term term;
      term.transform = SlotTransform(slot);
      term.weights = std::move(d);
      plan.terms.push_back(std::move(term));
    }
    if (!plan.luts.any()) {
      std::vector<const int32_t*> weights;
      for (const WeightPlan::Term& term : plan.terms) weights.push_back(term.weights.data());
      plan.blocks = PackDepthwise(weights.data(), static_cast<int>(weights.size()), M, plan.KH, plan.KW);
    }
    return plan;
  }

  // The u8 GEMM's k-quads: per tap, its channel quads in whole groups of 16 first (AMX tiles read
  // a group at one stride), then every tap's remaining quads.
  {
    const int64_t taps = plan.KH * plan.KW, cq = plan.Kq / kQuad / taps, full = cq / 16 * 16;
    for (int64_t t = 0; t < taps; ++t) {
      for (int64_t q = 0; q < full; ++q) plan.quad_order.push_back(static_cast<int32_t>(t * cq + q));
    }
    for (int64_t t = 0; t < taps; ++t) {
      for (int64_t q = full; q < cq; ++q) plan.quad_order.push_back(static_cast<int32_t>(t * cq + q));
    }
  }

  for (int slot = 0; slot < slots; ++slot) {
    const std::vector<int32_t>& d = dense[static_cast<size_t>(slot)];
    if (d.empty()) continue;
    WeightPlan::Gemm gemm;
    gemm.transform = SlotTransform(slot);
    const size_t groups = static_cast<size_t>(plan.group);
    gemm.rows.resize(groups);
    gemm.weights.resize(groups);
    gemm.rows8.resize(groups);
    gemm.weights8.resize(groups);
    gemm.shift8.resize(groups);
    gemm.rowsum8.resize(groups);
    const int log_scale = U8LogScale(gemm.transform);
    const int max_pair = MaxPairSum(U8Bound(gemm.transform));
    bool any = false;
    for (int64_t g = 0; g < plan.group; ++g) {
      for (int64_t ml = 0; ml < plan.Mg; ++ml) {
        const int32_t* row = d.data() + (g * plan.Mg + ml) * K;
        if (std::all_of(row, row + K, [](int32_t v) { return v == 0; })) continue;
        any = true;
        // The u8 x s8 GEMM takes the row when it is 2^h times an int8 row (h: the common power
        // of two of its entries) whose pairs the selected kernel multiplies exactly.
        int h = 31;
        for (int64_t k = 0; k < K; ++k) {
          if (row[k]) h = std::min(h, __builtin_ctz(static_cast<unsigned>(row[k])));
        }
        // In the u8 GEMM's order k' = (i * KW + j) * Cq + c (Im2Col::Quads), zero-padded.
        const int64_t cq = plan.Kq / (plan.KH * plan.KW);
        std::vector<int32_t> reordered(static_cast<size_t>(plan.Kq), 0);
        const int64_t taps = plan.KH * plan.KW;
        for (int64_t c = 0, k = 0; c < plan.Cg; ++c) {
          for (int64_t tap = 0; tap < taps; ++tap, ++k) {
            reordered[static_cast<size_t>(tap * cq + c)] = row[k] >> h;  // exact: 2^h divides row[k]
          }
        }
        bool fits = true;
        int32_t sum = 0;
        for (size_t k = 0; k < reordered.size() && fits; k += 2) {
          const int32_t v0 = reordered[k], v1 = reordered[k + 1];
          fits = v0 >= -128 && v0 <= 127 && v1 >= -128 && v1 <= 127 && std::abs(v0) + std::abs(v1) <= max_pair;
          sum += v0 + v1;
        }
        if (fits) {
          gemm.rows8[g].push_back(static_cast<int32_t>(ml));
          gemm.shift8[g].push_back(h + log_scale);
          gemm.rowsum8[g].push_back(sum);
          std::vector<int8_t>& out8 = gemm.weights8[g];
          for (int32_t q : plan.quad_order) {  // the u8 GEMM's quad order
            for (int e = 0; e < kQuad; ++e) out8.push_back(static_cast<int8_t>(reordered[static_cast<size_t>(kQuad * q + e)]));
          }
          continue;
        }
        gemm.rows[g].push_back(static_cast<int32_t>(ml));
        std::vector<int16_t>& out = gemm.weights[g];
        for (int64_t k = 0; k < plan.Kp; ++k) {
          const int32_t v = k < K ? row[k] : 0;
          if (v < std::numeric_limits<int16_t>::min() || v > std::numeric_limits<int16_t>::max()) {
            throw OpError("internal: a decomposed weight does not fit int16");
          }
          out.push_back(static_cast<int16_t>(v));
        }
      }
    }
    if (any) plan.gemms.push_back(std::move(gemm));
  }
  return plan;
}

}  // namespace axonnx::roupconv
