// Marks functions shared by the CPU build and nvcc device code. Outside nvcc ABL_HD is empty, so the
// same headers compile as plain C++.
//
// ABL_FN also gives the function internal linkage. The kernels are compiled several times with
// different -m flags (kernels_avx2.cpp, kernels_avx512.cpp); an inline function with external linkage
// emitted by an AVX-512 translation unit could otherwise be the copy the linker keeps for the whole
// addon, and crash a CPU without AVX-512.
#pragma once

#if defined(__CUDACC__)
#define ABL_HD __host__ __device__
#else
#define ABL_HD
#endif

#define ABL_FN ABL_HD static inline
