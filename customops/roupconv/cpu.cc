#include "roupconv/cpu.h"

#include <cstdlib>
#include <cstring>

namespace axonnx::roupconv {
namespace {

bool Off(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

CpuFeatures Detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (Off("AXONNX_NO_AVX2")) return f;
  f.avx2 = __builtin_cpu_supports("avx2");
  if (Off("AXONNX_NO_VNNI")) return f;
  f.avx512 = f.avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
  f.vnni512 = f.avx512 && __builtin_cpu_supports("avx512vnni");
  f.vbmi = f.avx512 && __builtin_cpu_supports("avx512vbmi");
#endif
  return f;
}

}  // namespace

const CpuFeatures& Cpu() {
  static const CpuFeatures features = Detect();
  return features;
}

}  // namespace axonnx::roupconv
