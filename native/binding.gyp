{
  "targets": [
    {
      "target_name": "chainopt_blas",
      "sources": ["src/chainopt_blas.cc"],
      "cflags_cc": ["-O2", "-std=c++17", "<!@(node src/openblas-flags.mjs cflags)"],
      "libraries": ["<!@(node src/openblas-flags.mjs libs)"],
      "xcode_settings": {
        "OTHER_CPLUSPLUSFLAGS": ["-O2", "-std=c++17", "<!@(node src/openblas-flags.mjs cflags)"]
      }
    }
  ]
}
