{
  "targets": [
    {
      "target_name": "chainopt_blas",
      "sources": ["src/chainopt_blas.cc", "src/chainopt_kernels.cc", "src/chainopt_dnn.cc"],
      "cflags_cc": [
        "-O2",
        "-std=c++17",
        "-fopenmp",
        "-ffp-contract=off",
        "-fno-math-errno",
        "-ftree-vectorize",
        "<!@(node src/openblas-flags.mjs cflags)",
        "<!@(node src/dnnl-flags.mjs cflags)"
      ],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["<!@(node src/openblas-flags.mjs libs)", "<!@(node src/dnnl-flags.mjs libs)", "-fopenmp"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "OTHER_CPLUSPLUSFLAGS": [
          "-O2",
          "-std=c++17",
          "-ffp-contract=off",
          "-fno-math-errno",
          "-ftree-vectorize",
          "<!@(node src/openblas-flags.mjs cflags)",
          "<!@(node src/dnnl-flags.mjs cflags)"
        ]
      }
    }
  ]
}
