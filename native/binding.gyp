{
  "targets": [
    {
      "target_name": "sid_native",
      "sources": ["sid_native.cc"],
      "cflags_cc": ["-O3", "-march=native", "-std=c++17", "-fno-exceptions"],
      "cflags_cc!": ["-fno-rtti"],
      "include_dirs": ["/usr/include/x86_64-linux-gnu/openblas-pthread", "/usr/include/openblas"],
      "libraries": ["-lopenblas", "-lpthread"]
    }
  ]
}
