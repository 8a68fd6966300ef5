// What this build and this machine run: the kernel chooser's three choices and every projection backend plug-in.
#pragma once

#include <string>
#include <vector>

namespace abl {

struct BackendInfo {
  std::string name;  // "cpu", "cuda"
  int devices = 0;   // usable now; 0 with `reason` when the plug-in cannot run
  std::string reason;
};

struct RuntimeInfo {
  unsigned threads = 1;           // default kernel threads (hardware concurrency)
  std::string kernel_setting;     // ABLITERATE_KERNELS as given, "auto" when unset
  std::string cpu_level;          // the widest instruction set the CPU runs
  std::string projection_kernels; // the table each of the three kernel families runs
  std::string verify_kernels;
  std::string forward_kernels;
  // The forward table each `compute` setting runs (fwd::forward_kernels_for): fp32 is forward_kernels; bf16 and auto
  // name the bf16 recipe where this CPU and the cap allow it, forward_kernels where they do not.
  std::string forward_bf16_kernels;
  std::string forward_auto_kernels;
  std::vector<BackendInfo> backends;  // the projection backend plug-ins compiled in, CPU first
};

RuntimeInfo runtime_info();

}  // namespace abl
