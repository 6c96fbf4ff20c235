{
  "targets": [
    {
      "target_name": "chainopt_mpi",
      "sources": ["src/chainopt_mpi.cc"],
      "cflags_cc": ["-O2", "-std=c++17", "<!@(node src/mpi-flags.mjs cflags)"],
      "libraries": ["<!@(node src/mpi-flags.mjs libs)", "-ldl"],
      "xcode_settings": {
        "OTHER_CPLUSPLUSFLAGS": ["-O2", "-std=c++17", "<!@(node src/mpi-flags.mjs cflags)"]
      }
    }
  ]
}
