#include "common/kernel_info.h"

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>

namespace axonnx {
namespace {

// OrtApi::KernelInfoGetAttributeArray_string, added in API version 25 (onnxruntime 1.25).
// OrtApi is append-only (its ABI never reorders), so in every runtime >= 1.25 this function
// pointer sits in slot 417 of the table. Headers older than 1.25 do not declare it; then the
// slot is read directly. The slot number is offsetof(OrtApi, KernelInfoGetAttributeArray_string)
// / sizeof(void*) in the 1.25+ headers (checked against onnxruntime 1.27 and 1.31).
using StringArrayFn = OrtStatusPtr(ORT_API_CALL*)(const OrtKernelInfo* info, const char* name,
                                                   OrtAllocator* allocator, char*** out,
                                                   size_t* size);
constexpr uint32_t kStringArrayApiVersion = 25;
constexpr size_t kStringArraySlot = 417;

StringArrayFn g_get_string_array = nullptr;
std::string g_runtime_version = "unknown";

size_t ElementSize(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL:
      return 1;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16:
      return 2;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
      return 4;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE:
      return 8;
    default:
      return 0;
  }
}

// Copies a tensor OrtValue (type, shape, bytes).
TensorValue CopyTensor(const OrtApi& api, const OrtValue* value) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  Ort::ThrowOnError(api.GetTensorTypeAndShape(value, &info));
  std::unique_ptr<OrtTensorTypeAndShapeInfo, void (*)(OrtTensorTypeAndShapeInfo*)> guard(
      info, api.ReleaseTensorTypeAndShapeInfo);
  TensorValue out;
  Ort::ThrowOnError(api.GetTensorElementType(info, &out.type));
  size_t rank = 0;
  Ort::ThrowOnError(api.GetDimensionsCount(info, &rank));
  out.shape.resize(rank);
  Ort::ThrowOnError(api.GetDimensions(info, out.shape.data(), rank));
  const size_t bytes = out.size() * ElementSize(out.type);
  if (bytes) {
    void* data = nullptr;
    Ort::ThrowOnError(api.GetTensorMutableData(const_cast<OrtValue*>(value), &data));
    out.bytes.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + bytes);
  }
  return out;
}

}  // namespace

size_t TensorValue::size() const {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d < 0 ? 0 : d);
  return n;
}

const char* TypeName(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return "int8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: return "int16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16: return "uint16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32: return "uint32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64: return "uint64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "float64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING: return "string";
    default: return "an unsupported type";
  }
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

void InitStringArrayAttributes(const OrtApiBase* api_base) {
  g_get_string_array = nullptr;
  const char* version = api_base->GetVersionString();
  g_runtime_version = version ? version : "unknown";
  int major = 0, minor = 0;
  if (!version || std::sscanf(version, "%d.%d", &major, &minor) != 2) return;
  // Asking GetApi for a version the runtime lacks prints an error, so check the release first.
  if (major < 1 || (major == 1 && minor < static_cast<int>(kStringArrayApiVersion))) return;
  const OrtApi* api = api_base->GetApi(kStringArrayApiVersion);
  if (!api) return;
#if ORT_API_VERSION >= 25
  static_assert(offsetof(OrtApi, KernelInfoGetAttributeArray_string) ==
                    kStringArraySlot * sizeof(void*),
                "OrtApi::KernelInfoGetAttributeArray_string moved");
  g_get_string_array = api->KernelInfoGetAttributeArray_string;
#else
  static_assert(sizeof(OrtApi) <= kStringArraySlot * sizeof(void*),
                "these headers already declare the slot; use the named member");
  std::memcpy(&g_get_string_array,
              reinterpret_cast<const char*>(api) + kStringArraySlot * sizeof(void*),
              sizeof(g_get_string_array));
#endif
}

KernelAttributes::KernelAttributes(const OrtApi& api, const OrtKernelInfo* info)
    : api_(api), info_(info) {
  size_t size = 0;
  if (OrtStatus* status = api_.KernelInfo_GetNodeName(info_, nullptr, &size)) {
    api_.ReleaseStatus(status);
    return;
  }
  std::string name(size, '\0');
  if (OrtStatus* status = api_.KernelInfo_GetNodeName(info_, name.data(), &size)) {
    api_.ReleaseStatus(status);
    return;
  }
  name.resize(size ? size - 1 : 0);  // size counts the terminating NUL
  node_name_ = std::move(name);
}

bool KernelAttributes::Check(OrtStatus* status, const char* name, const char* expected) const {
  if (!status) return true;
  std::string message = api_.GetErrorMessage(status);
  api_.ReleaseStatus(status);
  // onnxruntime reports a missing attribute as "No attribute with name:'x'is defined." (scalars)
  // or "No attribute with this name is defined." (arrays); anything else is a type mismatch.
  if (message.find("No attribute") != std::string::npos) return false;
  throw OpError(std::string("attribute '") + name + "' must be " + expected + " (" + message + ")");
}

std::optional<int64_t> KernelAttributes::Int(const char* name) const {
  int64_t value = 0;
  if (!Check(api_.KernelInfoGetAttribute_int64(info_, name, &value), name, "an int")) return std::nullopt;
  return value;
}

std::optional<std::string> KernelAttributes::String(const char* name) const {
  size_t size = 0;
  if (!Check(api_.KernelInfoGetAttribute_string(info_, name, nullptr, &size), name, "a string")) {
    return std::nullopt;
  }
  std::string value(size, '\0');
  Check(api_.KernelInfoGetAttribute_string(info_, name, value.data(), &size), name, "a string");
  value.resize(size ? size - 1 : 0);
  return value;
}

std::optional<std::vector<int64_t>> KernelAttributes::Ints(const char* name) const {
  size_t size = 0;
  if (!Check(api_.KernelInfoGetAttributeArray_int64(info_, name, nullptr, &size), name, "ints")) {
    return std::nullopt;
  }
  std::vector<int64_t> values(size);
  if (size) Check(api_.KernelInfoGetAttributeArray_int64(info_, name, values.data(), &size), name, "ints");
  return values;
}

std::optional<std::vector<std::string>> KernelAttributes::Strings(const char* name) const {
  if (!g_get_string_array) {
    throw OpError(std::string("reading the strings attribute '") + name +
                  "' needs onnxruntime >= 1.25 (this is onnxruntime " + g_runtime_version + ")");
  }
  OrtAllocator* allocator = nullptr;
  Ort::ThrowOnError(api_.GetAllocatorWithDefaultOptions(&allocator));
  char** raw = nullptr;
  size_t size = 0;
  if (!Check(g_get_string_array(info_, name, allocator, &raw, &size), name, "strings")) {
    return std::nullopt;
  }
  std::vector<std::string> values;
  values.reserve(size);
  for (size_t i = 0; i < size; ++i) {
    values.emplace_back(raw[i] ? raw[i] : "");
    if (raw[i]) allocator->Free(allocator, raw[i]);
  }
  if (raw) allocator->Free(allocator, raw);
  return values;
}

std::optional<TensorValue> KernelAttributes::Tensor(const char* name) const {
  OrtAllocator* allocator = nullptr;
  Ort::ThrowOnError(api_.GetAllocatorWithDefaultOptions(&allocator));
  OrtValue* value = nullptr;
  if (!Check(api_.KernelInfoGetAttribute_tensor(info_, name, allocator, &value), name, "a tensor")) {
    return std::nullopt;
  }
  std::unique_ptr<OrtValue, void (*)(OrtValue*)> guard(value, api_.ReleaseValue);
  return CopyTensor(api_, value);
}

std::optional<TensorValue> KernelAttributes::ConstantInput(size_t index) const {
  int is_constant = 0;
  const OrtValue* value = nullptr;
  OrtStatus* status = api_.KernelInfoGetConstantInput_tensor(info_, index, &is_constant, &value);
  if (status) {
    api_.ReleaseStatus(status);
    return std::nullopt;
  }
  if (!is_constant || !value) return std::nullopt;
  return CopyTensor(api_, value);
}

size_t KernelAttributes::InputCount() const {
  size_t count = 0;
  Ort::ThrowOnError(api_.KernelInfo_GetInputCount(info_, &count));
  return count;
}

std::string KernelAttributes::InputName(size_t index) const {
  size_t size = 0;
  Ort::ThrowOnError(api_.KernelInfo_GetInputName(info_, index, nullptr, &size));
  std::string name(size, '\0');
  Ort::ThrowOnError(api_.KernelInfo_GetInputName(info_, index, name.data(), &size));
  name.resize(size > 0 ? size - 1 : 0);  // size counts the terminating NUL
  return name;
}

}  // namespace axonnx
