// Which SIMD loops ROUPConv runs, chosen once when the library loads. Every choice gives the same
// integers; two environment switches let tests compare them:
//   AXONNX_NO_AVX2=1  portable loops only;
//   AXONNX_NO_VNNI=1  no AVX-512, VNNI or AMX loops (the AVX2 ones, vpmaddubsw for u8 x s8);
//   AXONNX_NO_AMX=1   no AMX tiles (AVX-512 VNNI for the u8 x s8 GEMM).
#pragma once

namespace axonnx::roupconv {

struct CpuFeatures {
  bool avx2 = false;
  bool avx512 = false;    // F + BW + VL: 512-bit integer loops
  bool vnni512 = false;   // AVX-512 VNNI (vpdpbusd on zmm)
  bool vbmi = false;      // AVX-512 VBMI (vpermi2b: 256-entry byte tables in registers)
  bool amx = false;       // AMX-INT8 with the kernel's permission (tdpbsud), beside VNNI-512
};

const CpuFeatures& Cpu();

}  // namespace axonnx::roupconv
