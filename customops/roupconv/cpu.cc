#include "roupconv/cpu.h"

#include <cstdlib>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <cstring>

#if defined(__linux__) && (defined(__x86_64__) || defined(__i386__))
#include <sys/syscall.h>
#include <unistd.h>
#endif

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
#if defined(__linux__)
  // AMX-INT8 (CPUID 7.0 EDX bits 24, 25) needs the kernel's leave to use the tile data state
  // (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); without it a tile instruction faults.
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool amx_cpu = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 24)) && (d & (1u << 25));
  if (f.vnni512 && amx_cpu && !Off("AXONNX_NO_AMX")) {
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    f.amx = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }
#endif
#endif
  return f;
}

}  // namespace

const CpuFeatures& Cpu() {
  static const CpuFeatures features = Detect();
  return features;
}

}  // namespace axonnx::roupconv
