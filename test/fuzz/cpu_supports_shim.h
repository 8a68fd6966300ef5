// clang 14 rejects __builtin_cpu_supports("f16c"), which native/core/kernel_dispatch.cpp uses (GCC accepts it;
// reported in docs/reliability.md). The fuzz build force-includes this header into that one file and routes the
// builtin to cpu_supports_shim.cpp, so the native sources build unchanged with clang.
#pragma once

extern "C" int abl_fuzz_cpu_supports(const char* feature);
#define __builtin_cpu_supports(feature) abl_fuzz_cpu_supports(feature)
