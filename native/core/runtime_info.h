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
  std::vector<BackendInfo> backends;  // the projection backend plug-ins compiled in, CPU first
};

RuntimeInfo runtime_info();

}  // namespace abl
