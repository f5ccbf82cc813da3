// sid-ts native kernels: NHWC convolution forward, input gradient and filter gradient (oneDNN when compiled in,
// else OpenBLAS sgemm over im2col).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sid {

// Convolution (NHWC input [B,H,W,Cin], filter [KH,KW,Cin,Cout], output [B,OH,OW,Cout]).

struct Conv {
  int64_t b, h, w, cin, oh, ow, cout, kh, kw, sh, sw, pt, pl, dh, dw;
  int64_t k() const { return kh * kw * cin; }
  int64_t pixels() const { return oh * ow; }
  // Lengths of the input [B,H,W,Cin], the filter [KH,KW,Cin,Cout] and the output [B,OH,OW,Cout].
  size_t inputLength() const { return size_t(b * h * w * cin); }
  size_t filterLength() const { return size_t(k() * cout); }
  size_t outputLength() const { return size_t(b * pixels() * cout); }
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && oh == h && ow == w; }
};

// y = conv(x, f) (+ bias when not null).
void convForward(const Conv& c, const float* x, const float* f, const float* bias, float* y);
// dx = the gradient of conv2d with respect to its input, given dy.
void convBackpropInput(const Conv& c, const float* dy, const float* f, float* dx);
// df = the gradient of conv2d with respect to its filter, given x and dy.
void convBackpropFilter(const Conv& c, const float* x, const float* dy, float* df);

// Forces the convolutions onto oneDNN (OpenBLAS only for shapes it rejects) or OpenBLAS; returns whether oneDNN is
// now used (false when it is not compiled in).
bool useOneDnn(bool enabled);
// Sets the mode: "auto" (each shape and kernel on the library measured faster on its first calls; the default when
// oneDNN is compiled in), "onednn" or "openblas". Returns false (and changes nothing) for a mode this build lacks.
bool setConvMode(const std::string& mode);
// "auto(onednn,openblas)", "onednn+openblas" or "openblas": what the convolutions run on now.
const char* convLibrary();
// Reads SID_NATIVE_DNNL (0: OpenBLAS), SID_NATIVE_CONV (the mode) and SID_NATIVE_CHUNK (the im2col block size in
// floats). Called once, when the addon loads.
void initConv();

}  // namespace sid
