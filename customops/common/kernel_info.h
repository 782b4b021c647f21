// Reading a custom op's node attributes through the onnxruntime C API, once, at kernel
// creation. Every reader tells "absent" (std::nullopt) from "present but malformed" (throws
// OpError), so the op can apply ONNX defaults and still reject a wrong attribute.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <onnxruntime_cxx_api.h>

namespace axonnx {

// A user-facing error. Ops catch it at the API boundary and turn it into an OrtStatus.
class OpError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A tensor-valued attribute (or constant input), copied out of onnxruntime.
struct TensorValue {
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // raw element bytes, row-major

  size_t size() const;
  template <typename T>
  const T* data() const { return reinterpret_cast<const T*>(bytes.data()); }
};

const char* TypeName(ONNXTensorElementDataType type);
std::string ShapeString(const std::vector<int64_t>& shape);

// Called once by RegisterCustomOps: finds OrtApi::KernelInfoGetAttributeArray_string (API 25,
// onnxruntime >= 1.25) in the runtime that loaded the library, whichever headers we built with.
void InitStringArrayAttributes(const OrtApiBase* api_base);

class KernelAttributes {
 public:
  KernelAttributes(const OrtApi& api, const OrtKernelInfo* info);

  const std::string& node_name() const { return node_name_; }

  std::optional<int64_t> Int(const char* name) const;
  std::optional<std::string> String(const char* name) const;
  std::optional<std::vector<int64_t>> Ints(const char* name) const;
  std::optional<std::vector<std::string>> Strings(const char* name) const;
  std::optional<TensorValue> Tensor(const char* name) const;

  // A constant-initializer input, or nullopt when the input is computed at run time.
  std::optional<TensorValue> ConstantInput(size_t index) const;
  size_t InputCount() const;
  // The name of input ``index``; "" for an input the node leaves out (an empty name).
  std::string InputName(size_t index) const;

 private:
  // Throws OpError for a malformed attribute; returns false when the attribute is absent.
  bool Check(OrtStatus* status, const char* name, const char* expected) const;

  const OrtApi& api_;
  const OrtKernelInfo* info_;
  std::string node_name_;
};

}  // namespace axonnx
