{
  "variables": {
    "sid_dnnl%": "<!(test -e /usr/include/oneapi/dnnl/dnnl.hpp && echo 1 || echo 0)"
  },
  "targets": [
    {
      "target_name": "sid_native",
      "sources": [
        "src/addon.cc", "src/parallel.cc", "src/conv.cc", "src/matmul.cc", "src/elementwise.cc", "src/reduce.cc",
        "src/fused.cc", "src/copy.cc"
      ],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-O3", "-march=native", "-std=c++17", "-fexceptions", "-fopenmp", "-ffp-contract=off", "-fno-math-errno"],
      "include_dirs": ["/usr/include/x86_64-linux-gnu/openblas-pthread", "/usr/include/openblas"],
      "libraries": ["-lopenblas", "-lpthread", "-fopenmp"],
      "conditions": [
        ["sid_dnnl==1", {
          "defines": ["SID_HAVE_DNNL"],
          "libraries": ["-ldnnl"]
        }]
      ]
    }
  ]
}
