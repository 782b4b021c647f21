// Running a ROUPConv node on a plan: the per-run constants (bias and offset terms, requantization
// scales, the u8 operands for x's zero point), the split into tasks (images x output-row runs x
// output-channel blocks) over onnxruntime's thread pool, and per task: the activation layout
// (im2col.h), the GEMMs (gemm.h, gemm_u8.h) or the direct kernel (depthwise.h), and
// requantization.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <limits>
#include <mutex>

#include "roupconv/im2col.h"
#include "roupconv/parallel.h"
#include "roupconv/roupconv.h"
#include "roupconv/util.h"

namespace axonnx::roupconv {

// Scratch buffers for one task, grown as needed and kept for the next runs. A pool rather than
// thread_local storage: TLS in a dlopen'ed library costs a __tls_get_addr call per access.
struct Scratch {
  std::vector<uint8_t> band;
  std::vector<uint8_t> index;
  std::vector<int16_t> packed;
  std::vector<uint8_t> quads;    // activation indices for the u8 GEMM
  std::vector<uint8_t> packed8;  // ... mapped through a GEMM's table
  std::vector<int32_t> acc;
  std::vector<int32_t> quad_off;  // per k-quad: its byte offset in `quads`
  std::vector<int32_t> row_of;    // a task's GEMM rows, relative to its first output channel
  std::vector<int32_t> natural_off;  // Im2Col::QuadOffsets, before the plan's quad order
  std::vector<int64_t> lut_off;      // per k: its row's offset in `index`
  std::vector<int32_t> lut_err;      // implicit tasks: the LUT errors of real output pixels
  DepthwiseScratch direct;
};

std::unique_ptr<Scratch> ScratchPool::Acquire() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (free_.empty()) return std::make_unique<Scratch>();
  std::unique_ptr<Scratch> s = std::move(free_.back());
  free_.pop_back();
  return s;
}

void ScratchPool::Release(std::unique_ptr<Scratch> scratch) {
  std::lock_guard<std::mutex> lock(mutex_);
  free_.push_back(std::move(scratch));
}

ScratchPool::ScratchPool() = default;
ScratchPool::~ScratchPool() = default;

namespace {

// Each k's row offset in a row-major im2col of `cols` columns (LutErrorAdd's `off`).
const int64_t* RowOffsets(int64_t K, int64_t cols, std::vector<int64_t>& off) {
  off.resize(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) off[static_cast<size_t>(k)] = k * cols;
  return off.data();
}

struct Job : TaskErrors {
  const WeightPlan* plan;
  ScratchPool* pool;
  Im2Col im2col;
  const uint8_t* x;
  uint8_t* y;
  int64_t C, P, chunk, chunks;
  int64_t mblock = 0, mblocks = 1;  // implicit tasks: output channels per task (per conv group)
  // Implicit tasks split over output channels (one conv group): each (image, row run)'s band, and
  // its copies mapped through the GEMMs' tables, built once (BandTask) and shared by the blocks.
  bool shared = false;
  std::vector<uint8_t> bands;        // per (image, run): band_slots slots of band_bytes
  size_t band_bytes = 0, band_slots = 1;
  std::vector<size_t> band_slot;     // per GEMM: its slot (0: the band itself)
  std::vector<uint8_t> lut_index;    // LUT taps: per (image, run), the row-major im2col of its pixels
  size_t lut_bytes = 0;
  uint8_t x_flip, x_pad;
  std::vector<int32_t> base;   // per m: the bias and the u8 GEMMs' offset terms
  std::vector<U8Operand> operands;  // per GEMM: its u8 activation operand for x's zero point
  std::vector<char> needs_quads, needs_rows, has_lut;  // per conv group: u8 rows; int16 rows; LUT taps
  // Per conv group: the first GEMM with u8 rows (-1: none), which stores init[i] (the base of its
  // row i) plus its sums, and the rows it leaves out (filled with their base first).
  std::vector<int> first_gemm;
  std::vector<std::vector<int32_t>> init, fill_rows;
  std::vector<int32_t> packed_off;  // Im2Col::Quads's k-quad offsets: 64 q
  bool implicit = false;            // every row on the u8 GEMM: TaskImplicit
  int64_t out_h = 0;
  int32_t* acc_out = nullptr;  // set: the accumulators go here, [N][M][P], not requantized
  std::vector<float> scale;    // per m
  int y_zero_point, y_lo, y_hi;

  void Task(size_t task) {
    if (implicit) return TaskImplicit(task);
    const WeightPlan& p = *plan;
    const int64_t n = static_cast<int64_t>(task) / chunks, p0 = (static_cast<int64_t>(task) % chunks) * chunk;
    const int64_t p1 = std::min(P, p0 + chunk), cols = RoundUp(p1 - p0, kTile);
    std::unique_ptr<Scratch> lease = pool->Acquire();
    Scratch& scratch = *lease;
    scratch.index.resize(static_cast<size_t>(p.K * cols));
    scratch.packed.resize(static_cast<size_t>(p.Kp * cols));
    scratch.packed8.resize(static_cast<size_t>(p.Kq * cols));
    scratch.quads.resize(static_cast<size_t>(p.Kq * cols));
    scratch.acc.resize(static_cast<size_t>(p.Mg * cols));
    uint8_t* index = scratch.index.data();
    int32_t* acc = scratch.acc.data();
    for (int64_t g = 0; g < p.group; ++g) {
      const size_t gs = static_cast<size_t>(g);
      const uint8_t* xg = x + (n * C + g * p.Cg) * im2col.H * im2col.W;
      // The first u8 GEMM stores base + its sums; the rows it does not cover start at base.
      for (int32_t ml : fill_rows[gs]) std::fill_n(acc + ml * cols, cols, base[static_cast<size_t>(g * p.Mg + ml)]);
      // u8 x s8 rows: the activation indices packed once; a GEMM whose operand is not the index
      // itself maps them through its table.
      if (needs_quads[gs]) {
        im2col.Quads(xg, p.Cg, p0, p1, cols, x_flip, x_pad, scratch.quads.data(), scratch.band);
      }
      for (size_t gi = 0; gi < p.gemms.size(); ++gi) {
        const WeightPlan::Gemm& gemm = p.gemms[gi];
        const std::vector<int32_t>& rows8 = gemm.rows8[gs];
        if (rows8.empty()) continue;
        const uint8_t* packed = scratch.quads.data();
        if (!operands[gi].identity) {
          ApplyTable(operands[gi], packed, static_cast<size_t>(p.Kq * cols), scratch.packed8.data());
          packed = scratch.packed8.data();
        }
        GemmU8S8(gemm.weights8[gs].data(), static_cast<int>(rows8.size()), rows8.data(), gemm.shift8[gs].data(),
                 first_gemm[gs] == static_cast<int>(gi) ? init[gs].data() : nullptr, static_cast<int>(p.Kq),
                 packed, packed_off.data(), static_cast<size_t>(p.Kq) * kTile, static_cast<int>(cols), acc,
                 static_cast<size_t>(cols));
      }
      // int16 rows and LUT taps read the indices row by row.
      if (needs_rows[gs] || has_lut[gs]) im2col(xg, p.Cg, p0, p1, cols, x_flip, x_pad, index, scratch.band);
      if (needs_rows[gs]) {
        for (const WeightPlan::Gemm& gemm : p.gemms) {
          const std::vector<int32_t>& rows = gemm.rows[gs];
          if (rows.empty()) continue;
          XTransform transform = gemm.transform;
          transform.zero = x_pad;
          PackColumns(index, static_cast<size_t>(cols), static_cast<int>(p.K), static_cast<int>(cols),
                      transform, scratch.packed.data());
          GemmS16(gemm.weights[gs].data(), static_cast<int>(rows.size()), rows.data(),
                  static_cast<int>(p.Kp), scratch.packed.data(), static_cast<int>(cols), acc,
                  static_cast<size_t>(cols));
        }
      }
      if (has_lut[gs]) {
        LutErrorAdd(p.luts, g * p.Mg, (g + 1) * p.Mg, index, RowOffsets(p.K, cols, scratch.lut_off),
                    static_cast<int>(cols), acc, static_cast<size_t>(cols));
      }
      for (int64_t ml = 0; ml < p.Mg; ++ml) {
        const int64_t m = g * p.Mg + ml;
        if (acc_out) {
          std::copy_n(acc + ml * cols, p1 - p0, acc_out + (n * p.M + m) * P + p0);
          continue;
        }
        Requantize(acc + ml * cols, static_cast<int>(p1 - p0), scale[static_cast<size_t>(m)], y_zero_point,
                   y_lo, y_hi, y + (n * p.M + m) * P + p0);
      }
    }
    pool->Release(std::move(lease));
  }

  // Every row of the plan on the u8 GEMM: tasks of whole output rows whose GEMMs read the band
  // in place (Im2Col::Band); the accumulators hold virtual output rows of wv pixels.
  void TaskImplicit(size_t task) {
    const WeightPlan& p = *plan;
    const int64_t per_image = chunks * mblocks;
    const int64_t n = static_cast<int64_t>(task) / per_image;
    const int64_t oh0 = (static_cast<int64_t>(task) % per_image) / mblocks * chunk;
    // This task's output channels (local to each conv group): [m0, m1).
    const int64_t m0 = (static_cast<int64_t>(task) % mblocks) * mblock, m1 = std::min(p.Mg, m0 + mblock);
    const int64_t nrows_out = std::min(out_h - oh0, chunk);
    const Im2Col::BandShape shape = im2col.Shape(p.Cg, nrows_out);
    const int64_t cols = RoundUp(nrows_out * shape.wv, kTile);
    std::unique_ptr<Scratch> lease = pool->Acquire();
    Scratch& scratch = *lease;
    if (!shared) scratch.quads.resize(static_cast<size_t>(shape.words * kQuad));
    scratch.acc.resize(static_cast<size_t>((m1 - m0) * cols));
    im2col.QuadOffsets(shape, scratch.natural_off);
    scratch.quad_off.resize(p.quad_order.size());
    for (size_t i = 0; i < p.quad_order.size(); ++i) {
      scratch.quad_off[i] = scratch.natural_off[static_cast<size_t>(p.quad_order[i])];
    }
    // With shared bands (BandTask), this task's band and its mapped copies.
    const size_t run = static_cast<size_t>(n * chunks + oh0 / chunk);
    const uint8_t* shared_band = shared && !bands.empty() ? bands.data() + run * band_slots * band_bytes : nullptr;
    int32_t* acc = scratch.acc.data();  // row ml - m0
    const int64_t out_w = im2col.out_w;
    for (int64_t g = 0; g < p.group; ++g) {
      const size_t gs = static_cast<size_t>(g);
      const uint8_t* xg = x + (n * C + g * p.Cg) * im2col.H * im2col.W;
      for (int32_t ml : fill_rows[gs]) {
        if (ml >= m0 && ml < m1) std::fill_n(acc + (ml - m0) * cols, cols, base[static_cast<size_t>(g * p.Mg + ml)]);
      }
      if (needs_quads[gs] && !shared) {
        im2col.Band(xg, p.Cg, oh0, nrows_out, x_flip, x_pad, shape, scratch.quads.data(), scratch.band);
      }
      for (size_t gi = 0; gi < p.gemms.size(); ++gi) {
        const WeightPlan::Gemm& gemm = p.gemms[gi];
        const std::vector<int32_t>& rows8 = gemm.rows8[gs];
        // rows8 is ascending: this task's rows are one run of it.
        const size_t i0 = static_cast<size_t>(std::lower_bound(rows8.begin(), rows8.end(), m0) - rows8.begin());
        const size_t i1 = static_cast<size_t>(std::lower_bound(rows8.begin(), rows8.end(), m1) - rows8.begin());
        if (i0 == i1) continue;
        scratch.row_of.resize(i1 - i0);
        for (size_t i = i0; i < i1; ++i) scratch.row_of[i - i0] = rows8[i] - static_cast<int32_t>(m0);
        const uint8_t* b = scratch.quads.data();
        if (shared) {
          b = shared_band + static_cast<size_t>(band_slot[gi]) * band_bytes;
        } else if (!operands[gi].identity) {
          scratch.packed8.resize(scratch.quads.size());
          ApplyTable(operands[gi], b, scratch.quads.size(), scratch.packed8.data());
          b = scratch.packed8.data();
        }
        GemmU8S8(gemm.weights8[gs].data() + i0 * static_cast<size_t>(p.Kq), static_cast<int>(i1 - i0),
                 scratch.row_of.data(), gemm.shift8[gs].data() + i0,
                 first_gemm[gs] == static_cast<int>(gi) ? init[gs].data() + i0 : nullptr, static_cast<int>(p.Kq), b,
                 scratch.quad_off.data(), kTile * kQuad, static_cast<int>(cols), acc, static_cast<size_t>(cols));
      }
      if (has_lut[gs] && p.luts.any(g * p.Mg + m0, g * p.Mg + m1)) {
        // LUT errors: over the real output pixels of the rows (a row-major im2col), then added to
        // the virtual rows of the accumulators.
        const int64_t n = nrows_out * out_w, lcols = RoundUp(n, kTile);
        const uint8_t* index = shared ? lut_index.data() + run * lut_bytes : LutIndex(xg, oh0, nrows_out, scratch);
        scratch.lut_err.assign(static_cast<size_t>((m1 - m0) * lcols), 0);
        int32_t* err = scratch.lut_err.data();
        LutErrorAdd(p.luts, g * p.Mg + m0, g * p.Mg + m1, index,
                    RowOffsets(p.K, lcols, scratch.lut_off), static_cast<int>(n), err, static_cast<size_t>(lcols));
        for (int64_t ml = 0; ml < m1 - m0; ++ml) {
          for (int64_t r = 0; r < nrows_out; ++r) {
            int32_t* a = acc + ml * cols + r * shape.wv;
            const int32_t* e = err + ml * lcols + r * out_w;
            for (int64_t ow = 0; ow < out_w; ++ow) a[ow] += e[ow];
          }
        }
      }
      for (int64_t ml = m0; ml < m1; ++ml) {
        const int64_t m = g * p.Mg + ml;
        if (acc_out) {
          for (int64_t r = 0; r < nrows_out; ++r) {
            std::copy_n(acc + (ml - m0) * cols + r * shape.wv, out_w, acc_out + (n * p.M + m) * P + (oh0 + r) * out_w);
          }
          continue;
        }
        RequantizeRows(acc + (ml - m0) * cols, static_cast<size_t>(shape.wv), static_cast<int>(nrows_out),
                       static_cast<int>(out_w), scale[static_cast<size_t>(m)], y_zero_point, y_lo, y_hi,
                       y + (n * p.M + m) * P + oh0 * out_w, static_cast<size_t>(out_w));
      }
    }
    pool->Release(std::move(lease));
  }

  // The row-major im2col of output rows [oh0, oh0 + nrows) of one image (conv group) for its LUT
  // taps, RoundUp(nrows * out_w, kTile) columns.
  const uint8_t* LutIndex(const uint8_t* xg, int64_t oh0, int64_t nrows, Scratch& scratch, uint8_t* out = nullptr) {
    const int64_t q0 = oh0 * im2col.out_w, n = nrows * im2col.out_w, lcols = RoundUp(n, kTile);
    if (!out) {
      scratch.index.resize(static_cast<size_t>(plan->K * lcols));
      out = scratch.index.data();
    }
    im2col(xg, plan->Cg, q0, q0 + n, lcols, x_flip, x_pad, out, scratch.band);
    return out;
  }

  // Shared bands: the band of (image, output-row run) `task` and its copies mapped through each
  // GEMM's table, and the run's LUT im2col, built once for all of the run's output-channel blocks.
  void BandTask(size_t task) {
    const WeightPlan& p = *plan;
    const int64_t n = static_cast<int64_t>(task) / chunks, oh0 = (static_cast<int64_t>(task) % chunks) * chunk;
    const int64_t nrows_out = std::min(out_h - oh0, chunk);
    const Im2Col::BandShape shape = im2col.Shape(p.Cg, nrows_out);
    std::unique_ptr<Scratch> lease = pool->Acquire();
    if (!bands.empty()) {
      uint8_t* band = bands.data() + task * band_slots * band_bytes;
      im2col.Band(x + n * C * im2col.H * im2col.W, p.Cg, oh0, nrows_out, x_flip, x_pad, shape, band, lease->band);
      for (size_t gi = 0; gi < p.gemms.size(); ++gi) {
        if (band_slot[gi] > 0) {
          ApplyTable(operands[gi], band, static_cast<size_t>(shape.words * kQuad), band + band_slot[gi] * band_bytes);
        }
      }
    }
    if (!lut_index.empty()) LutIndex(x + n * C * im2col.H * im2col.W, oh0, nrows_out, *lease, lut_index.data() + task * lut_bytes);
    pool->Release(std::move(lease));
  }
};

}  // namespace

void ROUPConvKernel::Execute(OrtKernelContext* context, const Inputs& in, const WeightPlan& plan,
                             const Geometry& geometry, uint8_t* y, int32_t* acc_out) const {
  const int64_t N = in.x_shape[0], M = plan.M, P = geometry.out_h * geometry.out_w;
  Job job;
  job.plan = &plan;
  job.pool = &pool_;
  job.im2col = Im2Col{in.x_shape[2], in.x_shape[3], plan.KH, plan.KW,
                      conv_.strides[0], conv_.strides[1], conv_.dilations[0], conv_.dilations[1],
                      geometry.pad_top, geometry.pad_left, geometry.out_w};
  job.x = in.x;
  job.y = y;
  job.acc_out = acc_out;
  job.C = in.x_shape[1];
  job.P = P;
  job.x_flip = x_flip_;
  job.x_pad = in.x_zero_point ^ x_flip_;  // padding holds x's zero point: operand a = 0

  // acc = GEMMs + gathers + B[m]: the operands are zero-point-free, so no correction terms.
  job.base.resize(static_cast<size_t>(M));
  job.scale.resize(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) {
    const size_t i = static_cast<size_t>(m);
    job.base[i] = in.bias ? in.bias[m] : 0;
    // int32 accumulation, as QLinearConv's: refuse a channel whose worst case could wrap.
    if (plan.acc_bound[i] + std::abs(static_cast<int64_t>(job.base[i])) > std::numeric_limits<int32_t>::max()) {
      throw OpError("the int32 accumulator of output channel " + std::to_string(m) +
                    " can overflow (worst case " +
                    std::to_string(plan.acc_bound[i] + std::abs(static_cast<int64_t>(job.base[i]))) +
                    "); reduce the bias or split the layer");
    }
    const float w_scale = in.w_scale[in.w_scale_size == 1 ? 0 : m];
    const float product = in.x_scale * w_scale;  // float32, as onnxruntime computes it
    job.scale[i] = product / in.y_scale;
  }
  if (plan.direct) {
    if (acc_out) throw OpError("internal: a direct plan gives no accumulators");
    return ExecuteDirect(context, in, plan, geometry, job.base, job.scale, y);
  }
  // u8 GEMM rows: sum_k W[k] T(a_k) = 2^shift * (dot(W', U) + o * sum_k W'[k]) (gemm_u8.h);
  // the second term is a constant of the row.
  for (const WeightPlan::Gemm& gemm : plan.gemms) {
    XTransform transform = gemm.transform;
    transform.zero = job.x_pad;
    job.operands.push_back(MakeU8Operand(transform));
    const int offset = job.operands.back().offset;
    for (int64_t g = 0; g < plan.group; ++g) {
      const size_t gs = static_cast<size_t>(g);
      for (size_t i = 0; i < gemm.rows8[gs].size(); ++i) {
        const size_t m = static_cast<size_t>(g * plan.Mg + gemm.rows8[gs][i]);
        const uint32_t term = static_cast<uint32_t>(offset * gemm.rowsum8[gs][i]) << gemm.shift8[gs][i];
        job.base[m] = static_cast<int32_t>(static_cast<uint32_t>(job.base[m]) + term);
      }
    }
  }
  job.needs_quads.assign(static_cast<size_t>(plan.group), 0);
  job.needs_rows.assign(static_cast<size_t>(plan.group), 0);
  job.has_lut.assign(static_cast<size_t>(plan.group), 0);
  for (int64_t g = 0; g < plan.group; ++g) {
    const size_t gs = static_cast<size_t>(g);
    for (const WeightPlan::Gemm& gemm : plan.gemms) {
      job.needs_quads[gs] |= !gemm.rows8[gs].empty();
      job.needs_rows[gs] |= !gemm.rows[gs].empty();
    }
    job.has_lut[gs] = plan.luts.any(g * plan.Mg, (g + 1) * plan.Mg);
  }
  job.y_zero_point = in.y_zero_point;
  job.y_lo = IsSigned(y_type_) ? -128 : 0;
  job.y_hi = IsSigned(y_type_) ? 127 : 255;

  // The first u8 GEMM of each group initializes the accumulators of its rows.
  job.first_gemm.assign(static_cast<size_t>(plan.group), -1);
  job.init.resize(static_cast<size_t>(plan.group));
  job.fill_rows.resize(static_cast<size_t>(plan.group));
  bool implicit = true;
  for (int64_t g = 0; g < plan.group; ++g) {
    const size_t gs = static_cast<size_t>(g);
    implicit = implicit && !job.needs_rows[gs];
    std::vector<char> covered(static_cast<size_t>(plan.Mg), 0);
    for (size_t gi = 0; gi < plan.gemms.size(); ++gi) {
      const std::vector<int32_t>& rows8 = plan.gemms[gi].rows8[gs];
      if (rows8.empty()) continue;
      job.first_gemm[gs] = static_cast<int>(gi);
      for (int32_t ml : rows8) {
        covered[static_cast<size_t>(ml)] = 1;
        job.init[gs].push_back(job.base[static_cast<size_t>(g * plan.Mg + ml)]);
      }
      break;
    }
    for (int64_t ml = 0; ml < plan.Mg; ++ml) {
      if (!covered[static_cast<size_t>(ml)]) job.fill_rows[gs].push_back(static_cast<int32_t>(ml));
    }
  }
  job.implicit = implicit;
  job.out_h = geometry.out_h;

  int64_t chunk = 0;
  if (implicit) {
    // Tasks: (image, run of output rows), each row wv virtual pixels; the band and the
    // accumulators sized to stay in the L2 cache.
    const int64_t cq = plan.Kq / (plan.KH * plan.KW);
    const int64_t wv = geometry.out_w + ((plan.KW - 1) * conv_.dilations[1]) / conv_.strides[1];
    const int64_t bytes_per_column = 4 * plan.Mg + 8 * cq * conv_.strides[0] * conv_.strides[1];
    const int64_t target = std::clamp<int64_t>(192 * 1024 / bytes_per_column, 4 * kTile, 4096);
    // LUT errors look up 64 columns at a time and reuse each table row over a task's columns:
    // runs of up to 256 real pixels, split over channels before pixels.
    const bool lut = plan.luts.any();
    chunk = std::clamp<int64_t>(lut ? 256 / geometry.out_w : target / wv, 1, geometry.out_h);
    chunk = CeilDiv(geometry.out_h, CeilDiv(geometry.out_h, chunk));  // balanced runs
    // At least 8 tasks where the layer allows: split the pixels while a task keeps 256 virtual
    // pixels or more, then the output channels (blocks of >= 32, the packed weights of a block
    // reused over all of the task's pixels), then the pixels again.
    int64_t mblock = plan.Mg;
    const auto count = [&] { return N * CeilDiv(geometry.out_h, chunk) * CeilDiv(plan.Mg, mblock); };
    while (count() < 8) {
      if (!lut && chunk > 1 && chunk * wv > 256) {
        chunk = CeilDiv(chunk, 2);
      } else if (mblock >= 64) {
        mblock = RoundUp(CeilDiv(mblock, 2), 16);
      } else if (chunk > 1) {
        chunk = CeilDiv(chunk, 2);
      } else {
        break;
      }
    }
    job.chunk = chunk;
    job.chunks = CeilDiv(geometry.out_h, chunk);
    job.mblock = mblock;
    job.mblocks = CeilDiv(plan.Mg, mblock);
  } else {
    // Tasks: (image, run of output pixels). A run's scratch (activation indices, packed operands,
    // accumulators) is sized to stay in the L2 cache.
    const int64_t bytes_per_column = plan.K + 2 * plan.Kp + plan.Kq + 4 * plan.Mg;
    chunk = std::clamp<int64_t>((192 * 1024 / bytes_per_column) / kTile * kTile, kTile, 4096);
    chunk = std::min(chunk, RoundUp(P, kTile));
    while (N * CeilDiv(P, chunk) < 8 && chunk > 4 * kTile) chunk = RoundUp(chunk / 2, kTile);
    job.chunk = chunk;
    job.chunks = CeilDiv(P, chunk);
    for (int32_t q : plan.quad_order) job.packed_off.push_back(static_cast<int32_t>(q * kTile * kQuad));
  }
  const size_t tasks = static_cast<size_t>(N * job.chunks * job.mblocks);
  if (implicit && job.mblocks > 1 && plan.group == 1 && (job.needs_quads[0] || job.has_lut[0])) {
    job.shared = true;
    if (job.needs_quads[0]) {
      job.band_slot.assign(plan.gemms.size(), 0);
      for (size_t gi = 0; gi < plan.gemms.size(); ++gi) {
        if (!job.operands[gi].identity) job.band_slot[gi] = job.band_slots++;
      }
      job.band_bytes = static_cast<size_t>(RoundUp(job.im2col.Shape(plan.Cg, job.chunk).words * kQuad, 64));
      job.bands.resize(static_cast<size_t>(N * job.chunks) * job.band_slots * job.band_bytes);
    }
    if (job.has_lut[0]) {
      job.lut_bytes = static_cast<size_t>(RoundUp(plan.K * RoundUp(job.chunk * geometry.out_w, kTile), 64));
      job.lut_index.resize(static_cast<size_t>(N * job.chunks) * job.lut_bytes);
    }
    const size_t band_tasks = static_cast<size_t>(N * job.chunks);
    RunTasks<Job, &Job::BandTask>(api_, context, job, band_tasks);
  }

  RunTasks(api_, context, job, tasks);
}

namespace {

// The channel-block kernel's tasks: (image, band of output rows, run of blocks of 16 output
// channels).
struct BlockJob : TaskErrors {
  DepthwiseBlockArgs args;
  ScratchPool* pool;
  int64_t blocks, per_task, runs, band, bands;

  void Task(size_t task) {
    const int64_t n = static_cast<int64_t>(task) / (bands * runs), rest = static_cast<int64_t>(task) % (bands * runs);
    const int64_t oh0 = rest / runs * band, b0 = rest % runs * per_task;
    std::unique_ptr<Scratch> lease = pool->Acquire();
    DepthwiseBlockRun(args, n, b0, std::min(blocks, b0 + per_task), oh0, std::min(args.g.out_h, oh0 + band),
                      lease->direct);
    pool->Release(std::move(lease));
  }
};

// The direct kernel's tasks: (image, run of units), a unit one input channel (conv group) and up
// to kUnitRows of its output channels.
struct DirectJob : TaskErrors {
  const WeightPlan* plan;
  ScratchPool* pool;
  DepthwiseGeometry geometry;
  const uint8_t* x;
  uint8_t* y;
  int64_t C, P, units_per_image, unit_rows, mblocks, per_task, tasks_per_image;
  uint8_t x_flip, x_pad;
  const int32_t* base;
  const float* scale;
  std::vector<XTransform> transforms;  // per term, for x's zero point
  int y_zero_point, y_lo, y_hi;

  void Task(size_t task) {
    const WeightPlan& p = *plan;
    const int64_t n = static_cast<int64_t>(task) / tasks_per_image;
    const int64_t u0 = (static_cast<int64_t>(task) % tasks_per_image) * per_task;
    const int64_t u1 = std::min(units_per_image, u0 + per_task);
    std::unique_ptr<Scratch> lease = pool->Acquire();
    const size_t nterms = p.terms.size();
    std::vector<const int32_t*> weights_of(nterms);
    std::vector<uint8_t*> outs(static_cast<size_t>(unit_rows));
    const int64_t KK = p.KH * p.KW;
    for (int64_t unit = u0; unit < u1; ++unit) {
      const int64_t g = unit / mblocks, m0 = g * p.Mg + (unit % mblocks) * unit_rows;
      const int64_t count = std::min(unit_rows, (g + 1) * p.Mg - m0);
      for (size_t t = 0; t < nterms; ++t) weights_of[t] = p.terms[t].weights.data() + m0 * KK;
      for (int64_t i = 0; i < count; ++i) outs[static_cast<size_t>(i)] = y + (n * p.M + m0 + i) * P;
      DepthwiseChannels ch{transforms.data(), weights_of.data(), static_cast<int>(nterms),
                           p.luts.any() ? &p.luts : nullptr, m0, base + m0, scale + m0, y_zero_point, y_lo, y_hi,
                           outs.data(), static_cast<int>(count)};
      DepthwiseRun(geometry, x + (n * C + g) * geometry.H * geometry.W, x_flip, x_pad, ch, lease->direct);
    }
    pool->Release(std::move(lease));
  }
};

}  // namespace

void ROUPConvKernel::ExecuteDirect(OrtKernelContext* context, const Inputs& in, const WeightPlan& plan,
                                   const Geometry& geometry, const std::vector<int32_t>& base,
                                   const std::vector<float>& scale, uint8_t* y) const {
  const int64_t N = in.x_shape[0], P = geometry.out_h * geometry.out_w;
  DirectJob job;
  job.plan = &plan;
  job.pool = &pool_;
  job.geometry = DepthwiseGeometry{in.x_shape[2], in.x_shape[3], plan.KH, plan.KW,
                                   conv_.strides[0], conv_.strides[1], conv_.dilations[0], conv_.dilations[1],
                                   geometry.pad_top, geometry.pad_left, geometry.out_h, geometry.out_w};
  std::vector<XTransform> transforms;  // per term, for x's zero point
  for (const WeightPlan::Term& term : plan.terms) {
    transforms.push_back(term.transform);
    transforms.back().zero = in.x_zero_point ^ x_flip_;
  }
  const int y_lo = IsSigned(y_type_) ? -128 : 0, y_hi = IsSigned(y_type_) ? 127 : 255;
  if (plan.blocks.ok && DepthwiseBlocksAvailable() && N > 0 && P > 0) {
    BlockJob bj;
    bj.args = DepthwiseBlockArgs{job.geometry, &plan.blocks, transforms.data(), static_cast<int>(transforms.size()),
                                 x_flip_, static_cast<uint8_t>(in.x_zero_point ^ x_flip_), base.data(), scale.data(),
                                 in.y_zero_point, y_lo, y_hi, in.x, y, in.x_shape[1], plan.M, plan.Mg};
    bj.pool = &pool_;
    bj.blocks = CeilDiv(plan.M, kDepthwiseLanes);
    // Bands of output rows whose operand planes (64 bytes a position per term) stay in the L2
    // cache; then at least 8 tasks where the rows allow, and runs of blocks for about 16 tasks
    // (each task builds its band's layout once).
    const DepthwiseGeometry& g = job.geometry;
    const int64_t wp = (g.out_w - 1) * g.SW + (g.KW - 1) * g.DW + 1;
    const int64_t row_bytes = g.SH * wp * (64 * static_cast<int64_t>(transforms.size()) + 16) + 16 * g.out_w;
    int64_t band = std::clamp<int64_t>(192 * 1024 / std::max<int64_t>(1, row_bytes), 1, g.out_h);
    while (band > 1 && N * bj.blocks * CeilDiv(g.out_h, band) < 8) band = CeilDiv(band, 2);
    bj.band = CeilDiv(g.out_h, CeilDiv(g.out_h, band));  // balanced
    bj.bands = CeilDiv(g.out_h, bj.band);
    bj.per_task = std::clamp<int64_t>(N * bj.bands * bj.blocks / 16, 1, bj.blocks);
    bj.runs = CeilDiv(bj.blocks, bj.per_task);
    const size_t tasks = static_cast<size_t>(N * bj.bands * bj.runs);
    RunTasks(api_, context, bj, tasks);
    return;
  }
  job.x = in.x;
  job.y = y;
  job.C = in.x_shape[1];
  job.P = P;
  job.x_flip = x_flip_;
  job.x_pad = in.x_zero_point ^ x_flip_;
  job.base = base.data();
  job.scale = scale.data();
  job.transforms = transforms;
  job.y_zero_point = in.y_zero_point;
  job.y_lo = y_lo;
  job.y_hi = y_hi;
  // Units of up to 64 output channels; tasks of enough units for ~64K multiply-accumulates
  // each, and at least 16 tasks when the batch allows.
  job.unit_rows = std::min<int64_t>(plan.Mg, 64);
  job.mblocks = CeilDiv(plan.Mg, job.unit_rows);
  job.units_per_image = plan.group * job.mblocks;
  const int64_t unit_work = std::max<int64_t>(1, job.unit_rows * P * plan.KH * plan.KW);
  int64_t per = std::max<int64_t>(1, (int64_t{1} << 16) / unit_work);
  while (per > 1 && N * CeilDiv(job.units_per_image, per) < 16) per = CeilDiv(per, 2);
  job.per_task = per;
  job.tasks_per_image = CeilDiv(job.units_per_image, per);
  const size_t tasks = static_cast<size_t>(N * job.tasks_per_image);
  RunTasks(api_, context, job, tasks);
}

}  // namespace axonnx::roupconv
