// The library's only exported symbol: onnxruntime calls RegisterCustomOps when a session's
// options register this library (SessionOptions.register_custom_ops_library).
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <onnxruntime_cxx_api.h>
#include <onnxruntime_lite_custom_op.h>

#include "common/kernel_info.h"
#include "roupconv/roupconv.h"
#include "roupconvtranspose/roupconvtranspose.h"
#include "roupmatmul/roupmatmul.h"

namespace {

constexpr const char* kDomain = "com.axonnx";
constexpr int kSinceVersion = 1;

// A lite struct op whose kernel creation reports constructor errors as an OrtStatus (so a bad
// attribute fails session creation with its message) instead of throwing across the C API.
using LiteOp = Ort::Custom::OrtLiteCustomOp;

std::string InputName(const OrtApi& api, const OrtKernelInfo* info, size_t index) {
  size_t size = 0;
  Ort::ThrowOnError(api.KernelInfo_GetInputName(info, index, nullptr, &size));
  std::string name(size, '\0');
  Ort::ThrowOnError(api.KernelInfo_GetInputName(info, index, name.data(), &size));
  name.resize(size ? size - 1 : 0);
  return name;
}

template <typename Kernel>
LiteOp* MakeOp(const char* op_name = axonnx::roupconv::kOpName) {
  LiteOp* op = Ort::Custom::CreateLiteCustomOp<Kernel>(op_name, "CPUExecutionProvider", kSinceVersion);
  op->CreateKernelV2 = [](const OrtCustomOp* self, const OrtApi* api, const OrtKernelInfo* info,
                          void** kernel) -> OrtStatusPtr {
    try {
      auto* lite = static_cast<typename Ort::Custom::OrtLiteCustomStruct<Kernel>::Kernel*>(
          self->CreateKernel(self, api, info));
      // A node may write an omitted optional input (B) as "": onnxruntime counts it, and the lite
      // API would then read a tensor that does not exist. Count only the inputs that are there.
      while (lite->num_input_ > 0 && InputName(*api, info, lite->num_input_ - 1).empty()) {
        --lite->num_input_;
      }
      *kernel = lite;
      return nullptr;
    } catch (const std::exception& e) {
      return api->CreateStatus(ORT_INVALID_ARGUMENT, e.what());
    } catch (...) {
      return api->CreateStatus(ORT_FAIL, "[axonnx] unknown error while creating a kernel");
    }
  };
  return op;
}

// ROUPConv (and ROUPMatMul) for every (x, w, y) element-type combination: onnxruntime picks the kernel whose
// types match the node, and infers y's type from it.
const std::vector<std::unique_ptr<LiteOp>>& Ops() {
  using axonnx::roupconv::ROUPConv;
  static const std::vector<std::unique_ptr<LiteOp>> ops = [] {
    std::vector<std::unique_ptr<LiteOp>> v;
    v.emplace_back(MakeOp<ROUPConv<uint8_t, int8_t, uint8_t>>());
    v.emplace_back(MakeOp<ROUPConv<uint8_t, int8_t, int8_t>>());
    v.emplace_back(MakeOp<ROUPConv<uint8_t, uint8_t, uint8_t>>());
    v.emplace_back(MakeOp<ROUPConv<uint8_t, uint8_t, int8_t>>());
    v.emplace_back(MakeOp<ROUPConv<int8_t, int8_t, int8_t>>());
    v.emplace_back(MakeOp<ROUPConv<int8_t, int8_t, uint8_t>>());
    v.emplace_back(MakeOp<ROUPConv<int8_t, uint8_t, int8_t>>());
    v.emplace_back(MakeOp<ROUPConv<int8_t, uint8_t, uint8_t>>());
    // ROUPConvTranspose, for the same combinations.
    using axonnx::roupconvtranspose::ROUPConvTranspose;
    constexpr const char* kTranspose = axonnx::roupconvtranspose::kOpName;
    v.emplace_back(MakeOp<ROUPConvTranspose<uint8_t, int8_t, uint8_t>>(kTranspose));
    v.emplace_back(MakeOp<ROUPConvTranspose<uint8_t, int8_t, int8_t>>(kTranspose));
    v.emplace_back(MakeOp<ROUPConvTranspose<uint8_t, uint8_t, uint8_t>>(kTranspose));
    v.emplace_back(MakeOp<ROUPConvTranspose<uint8_t, uint8_t, int8_t>>(kTranspose));
    v.emplace_back(MakeOp<ROUPConvTranspose<int8_t, int8_t, int8_t>>(kTranspose));
    v.emplace_back(MakeOp<ROUPConvTranspose<int8_t, int8_t, uint8_t>>(kTranspose));
    v.emplace_back(MakeOp<ROUPConvTranspose<int8_t, uint8_t, int8_t>>(kTranspose));
    v.emplace_back(MakeOp<ROUPConvTranspose<int8_t, uint8_t, uint8_t>>(kTranspose));
    // ROUPMatMul: first its int32 form (no y_zero_point: MatMulInteger's output) for the four
    // (a, b) combinations, so that a node without y_zero_point infers int32 (roupmatmul.h), then
    // the same eight (a, b, y) combinations as ROUPConv.
    using axonnx::roupmatmul::ROUPMatMul;
    const char* mm = axonnx::roupmatmul::kOpName;
    v.emplace_back(MakeOp<ROUPMatMul<uint8_t, int8_t, int32_t>>(mm));
    v.emplace_back(MakeOp<ROUPMatMul<uint8_t, uint8_t, int32_t>>(mm));
    v.emplace_back(MakeOp<ROUPMatMul<int8_t, int8_t, int32_t>>(mm));
    v.emplace_back(MakeOp<ROUPMatMul<int8_t, uint8_t, int32_t>>(mm));
    v.emplace_back(MakeOp<ROUPMatMul<uint8_t, int8_t, uint8_t>>(mm));
    v.emplace_back(MakeOp<ROUPMatMul<uint8_t, int8_t, int8_t>>(mm));
    v.emplace_back(MakeOp<ROUPMatMul<uint8_t, uint8_t, uint8_t>>(mm));
    v.emplace_back(MakeOp<ROUPMatMul<uint8_t, uint8_t, int8_t>>(mm));
    v.emplace_back(MakeOp<ROUPMatMul<int8_t, int8_t, int8_t>>(mm));
    v.emplace_back(MakeOp<ROUPMatMul<int8_t, int8_t, uint8_t>>(mm));
    v.emplace_back(MakeOp<ROUPMatMul<int8_t, uint8_t, int8_t>>(mm));
    v.emplace_back(MakeOp<ROUPMatMul<int8_t, uint8_t, uint8_t>>(mm));
    return v;
  }();
  return ops;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (!api) {
    const OrtApi* oldest = api_base->GetApi(1);
    const std::string message = "the axonnx custom-op library was built for onnxruntime >= 1." +
                                std::to_string(ORT_API_VERSION) + "; this is onnxruntime " +
                                api_base->GetVersionString();
    return oldest ? oldest->CreateStatus(ORT_FAIL, message.c_str()) : nullptr;
  }
  Ort::InitApi(api);
  axonnx::InitStringArrayAttributes(api_base);

  // Each registration gets its own domain object; all of them live as long as the library.
  static std::mutex mutex;
  static std::vector<Ort::CustomOpDomain> domains;
  try {
    Ort::CustomOpDomain domain{kDomain};
    for (const auto& op : Ops()) domain.Add(op.get());
    Ort::UnownedSessionOptions(options).Add(domain);
    std::lock_guard<std::mutex> lock(mutex);
    domains.push_back(std::move(domain));
    return nullptr;
  } catch (const std::exception& e) {
    return api->CreateStatus(ORT_FAIL, e.what());
  }
}
