{
  # node-gyp build of the same sources as CMakeLists.txt, CPU only, without the AVX-512 kernels. The AVX2
  # kernels are a separate static library so that only they get -mavx2; the kernel chooser picks them at
  # runtime when the CPU has AVX2.
  # Sources are listed by a node one-liner so that new files join without editing this file.
  "variables": {
    "abliterate_avx2%": "<!(node -p \"process.arch === 'x64' ? 1 : 0\")"
  },
  "target_defaults": {
    "include_dirs": [
      "<!(node -p \"require('node-addon-api').include_dir\")",
      "native"
    ],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
    "cflags": ["-fPIC", "-ffp-contract=off"],
    # -fno-trapping-math lets GCC vectorize verify's branch-free screen (CMake sets it for that file only).
    "cflags_cc": ["-std=c++17", "-fexceptions", "-ffp-contract=off", "-fno-trapping-math"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      "OTHER_CFLAGS": ["-ffp-contract=off"]
    }
  },
  "targets": [
    {
      "target_name": "abliterate",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native', { recursive: true }).map(String).filter((f) => f.endsWith('.cpp') && !/kernels_avx(2|512)[.]cpp$/.test(f)).sort().map((f) => 'native/' + f.split(require('path').sep).join('/')).join(' ')\")"
      ],
      "conditions": [
        ["abliterate_avx2==1", {
          "dependencies": ["abliterate_avx2"],
          "defines": ["ABLITERATE_KERNEL_AVX2=1"]
        }]
      ]
    }
  ],
  "conditions": [
    ["abliterate_avx2==1", {
      "targets": [
        {
          "target_name": "abliterate_avx2",
          "type": "static_library",
          # The AVX2 translation units compile to nothing unless told their level is built.
          "defines": ["ABLITERATE_KERNEL_AVX2=1"],
          # Every *kernels_avx2.cpp (the projection kernels, the verifier's and the forward engine's).
          "sources": [
            "<!@(node -p \"require('fs').readdirSync('native', { recursive: true }).map(String).filter((f) => /kernels_avx2[.]cpp$/.test(f)).sort().map((f) => 'native/' + f.split(require('path').sep).join('/')).join(' ')\")"
          ],
          "cflags_cc": ["-mavx2", "-mfma", "-mf16c"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-mavx2", "-mfma", "-mf16c"] }
        }
      ]
    }]
  ]
}
