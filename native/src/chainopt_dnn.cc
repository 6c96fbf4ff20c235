// chainopt_dnn: float32 convolution, pooling and batch normalization through oneDNN (API v2, e.g.
// Debian's libdnnl-dev 2.6), registered into the addon's exports by RegisterDnn. Compiled to
// nothing unless the build found oneDNN (CHAINOPT_HAVE_DNNL, set by native/src/dnnl-flags.mjs):
// the addon is then exactly the OpenBLAS one.
//
// Design notes
// - Primitives are created once per (kind, geometry) and cached with their reorders (oneDNN 2.x
//   primitive descriptors are expensive: milliseconds for a JIT kernel). Their buffers are not:
//   the reordered tensors and oneDNN's scratchpads (scratchpad_mode::user) live in a few
//   process-wide arenas that grow to the largest call, since calls are serialized (one mutex), so
//   memory stays at the largest geometry's, not the sum over every batch size ever seen.
// - User tensors are plain NCHW (activations) and OIHW (weights), as chainopt stores them; the
//   convolutions let oneDNN pick its layout (format_tag::any, usually blocked nChw8c/nChw16c) and
//   reorder at the call's edges, which pays on every CPU with AVX2 or better. Pooling and
//   batch normalization run on NCHW (N×C for flat samples) directly (no reorder).
// - The JS data pointers are wrapped, not copied (dnnl::memory over a user pointer).
// - oneDNN's CPU runtime is OpenMP: the thread count is omp_set_num_threads, set with OpenBLAS's
//   (see docs/performance.md).

#include "chainopt_dnn.h"

#ifdef CHAINOPT_HAVE_DNNL

#include <oneapi/dnnl/dnnl.hpp>
#include <oneapi/dnnl/dnnl_version.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

// Pin the API: this file uses oneDNN v2's operation descriptors (convolution_forward::desc, …),
// which v3 removed.
#if DNNL_VERSION_MAJOR != 2
#error "chainopt_dnn is written for the oneDNN v2 API (DNNL_VERSION_MAJOR == 2)"
#endif

namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& Stream() {
  static dnnl::stream stream(Engine());
  return stream;
}

std::mutex& CacheMutex() {
  static std::mutex m;
  return m;
}

bool ThrowError(napi_env env, const char* fn, const std::string& message) {
  const std::string m = std::string(fn) + ": " + message;
  napi_throw_error(env, "ERR_CHAINOPT_DNNL", m.c_str());
  return false;
}

bool GetArgs(napi_env env, napi_callback_info info, const char* fn, size_t expected, napi_value* argv) {
  size_t argc = expected;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return false;
  if (argc < expected) return ThrowError(env, fn, "expected " + std::to_string(expected) + " arguments, got " + std::to_string(argc));
  return true;
}

// Activation layouts (the entries' optional trailing arguments): 0 plain NCHW, 8 nChw8c, 16
// nChw16c, i.e. channels in blocks of 8 or 16 innermost (oneDNN Developer Guide, "Understanding
// Memory Formats"). A chain keeps the activations between consecutive oneDNN layers in the blocked
// layout its convolutions pick (ActivationBlock), so that no reorder runs between them
// (src/chain/layouts.ts). Undefined means plain.
bool GetLayout(napi_env env, napi_value v, const char* fn, const char* name, tag* out) {
  napi_valuetype vt;
  napi_typeof(env, v, &vt);
  *out = tag::nchw;
  if (vt == napi_undefined) return true;
  int32_t b = -1;
  if (napi_get_value_int32(env, v, &b) != napi_ok || (b != 0 && b != 8 && b != 16))
    return ThrowError(env, fn, std::string("argument '") + name + "' must be a layout: 0 (NCHW), 8 (nChw8c) or 16 (nChw16c)");
  *out = b == 8 ? tag::nChw8c : b == 16 ? tag::nChw16c : tag::nchw;
  return true;
}

// Reads `expected` arguments and up to `optional` more (left undefined when absent) into argv.
bool GetArgsOptional(napi_env env, napi_callback_info info, const char* fn, size_t expected, size_t optional, napi_value* argv) {
  size_t argc = expected + optional;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return false;
  if (argc < expected) return ThrowError(env, fn, "expected " + std::to_string(expected) + " arguments, got " + std::to_string(argc));
  return true;
}

// A short name of a layout tag for cache keys.
const char* LayoutKey(tag t) { return t == tag::nChw8c ? "/8c" : t == tag::nChw16c ? "/16c" : ""; }

// A typed array of the given type (byteOffset applied); null/undefined allowed when `optional`.
bool GetTyped(napi_env env, napi_value v, const char* fn, const char* name, napi_typedarray_type want, bool optional, void** data,
              size_t* length) {
  napi_valuetype vt;
  napi_typeof(env, v, &vt);
  if (optional && (vt == napi_null || vt == napi_undefined)) {
    *data = nullptr;
    *length = 0;
    return true;
  }
  bool is_typed = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, length, data, nullptr, nullptr) != napi_ok || type != want) {
    const char* kind = want == napi_float32_array ? "Float32Array" : want == napi_int32_array ? "Int32Array" : "Uint8Array";
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", (std::string(fn) + ": argument '" + name + "' must be a " + kind).c_str());
    return false;
  }
  return true;
}

bool CheckLength(napi_env env, const char* fn, const char* name, size_t have, int64_t need) {
  if (static_cast<int64_t>(have) < need) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE",
                           (std::string(fn) + ": argument '" + name + "' has " + std::to_string(have) + " elements, needs " +
                            std::to_string(need))
                               .c_str());
    return false;
  }
  return true;
}

// A primitive's work partition is fixed for the thread count current when it is created (oneDNN
// with the OpenMP runtime reads omp_get_max_threads() then), so the cache key carries that count:
// after `--threads` changes, new primitives are created for the new count instead of reusing ones
// built for the old count.
std::string KeyPrefix(const char* kind) {
  std::string k(kind);
#ifdef _OPENMP
  k += "@" + std::to_string(omp_get_max_threads());
#endif
  return k;
}

// Convolution geometry, from an Int32Array [N, C, H, W, F, OH, OW, KH, KW, SH, SW, PH, PW].
struct ConvGeom {
  int64_t n, c, h, w, f, oh, ow, kh, kw, sh, sw, ph, pw;
  // oneDNN's right/bottom padding: the output extent must be (H + PH + PR − KH)/SH + 1 exactly.
  int64_t prh() const { return (oh - 1) * sh + kh - h - ph; }
  int64_t prw() const { return (ow - 1) * sw + kw - w - pw; }
  std::string key(const char* kind) const {
    std::string k = KeyPrefix(kind);
    for (int64_t v : {n, c, h, w, f, oh, ow, kh, kw, sh, sw, ph, pw}) k += "," + std::to_string(v);
    return k;
  }
};

// Pooling geometry, from an Int32Array [N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW].
struct PoolGeom {
  int64_t n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw;
  int64_t prh() const { return (oh - 1) * sh + kh - h - ph; }
  int64_t prw() const { return (ow - 1) * sw + kw - w - pw; }
  std::string key(const char* kind) const {
    std::string k = KeyPrefix(kind);
    for (int64_t v : {n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw}) k += "," + std::to_string(v);
    return k;
  }
};

bool GetGeom(napi_env env, napi_value v, const char* fn, size_t count, int64_t* out) {
  void* data;
  size_t len;
  if (!GetTyped(env, v, fn, "geometry", napi_int32_array, false, &data, &len)) return false;
  if (len != count) return ThrowError(env, fn, "geometry must have " + std::to_string(count) + " entries, got " + std::to_string(len));
  const int32_t* g = static_cast<const int32_t*>(data);
  for (size_t i = 0; i < count; i++) {
    if (g[i] < 0) return ThrowError(env, fn, "geometry entry " + std::to_string(i) + " is negative");
    out[i] = g[i];
  }
  return true;
}

bool GetConvGeom(napi_env env, napi_value v, const char* fn, ConvGeom* g) {
  int64_t a[13];
  if (!GetGeom(env, v, fn, 13, a)) return false;
  *g = {a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]};
  if (g->sh < 1 || g->sw < 1 || g->kh < 1 || g->kw < 1) return ThrowError(env, fn, "kernel and stride must be positive");
  if (g->prh() < 0 || g->prw() < 0) return ThrowError(env, fn, "geometry needs a negative right padding (unsupported)");
  return true;
}

bool GetPoolGeom(napi_env env, napi_value v, const char* fn, PoolGeom* g) {
  int64_t a[12];
  if (!GetGeom(env, v, fn, 12, a)) return false;
  *g = {a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11]};
  if (g->sh < 1 || g->sw < 1 || g->kh < 1 || g->kw < 1) return ThrowError(env, fn, "window and stride must be positive");
  if (g->prh() < 0 || g->prw() < 0) return ThrowError(env, fn, "geometry needs a negative right padding (unsupported)");
  return true;
}

// Process-wide buffers, 64-byte aligned, reused by every primitive (calls hold CacheMutex):
// slots 0–2 for the reordered tensors of one call, slot 3 for the primitive's scratchpad.
constexpr int kScratchpadSlot = 3;

void* Arena(int slot, size_t bytes) {
  struct Buffer {
    void* p = nullptr;
    size_t size = 0;
  };
  static Buffer buffers[4];
  Buffer& b = buffers[slot];
  if (bytes > b.size) {
    std::free(b.p);
    const size_t rounded = (bytes + 63) / 64 * 64;
    b.p = std::aligned_alloc(64, rounded);
    if (!b.p) {
      b.size = 0;
      throw std::bad_alloc();
    }
    b.size = rounded;
  }
  return b.p;
}

// A tensor in the primitive's layout: the user's memory itself when the layouts agree, else an
// arena buffer (slot) with the reorder to (inputs) or from (outputs) the user's layout.
struct Staged {
  memory::desc user_md;
  memory::desc prim_md;
  bool same = true;
  int slot = 0;
  dnnl::reorder reorder;

  void init(const memory::desc& user, const memory::desc& prim, bool input, int arena_slot) {
    user_md = user;
    prim_md = prim;
    slot = arena_slot;
    same = user == prim;
    if (same) return;
    reorder = input ? dnnl::reorder(dnnl::reorder::primitive_desc(Engine(), user, Engine(), prim))
                    : dnnl::reorder(dnnl::reorder::primitive_desc(Engine(), prim, Engine(), user));
  }
  memory scratch() const { return memory(prim_md, Engine(), Arena(slot, prim_md.get_size())); }
  // The memory to hand to the primitive for an input at `ptr` (reordered in when needed).
  memory in(void* ptr) const {
    memory u(user_md, Engine(), ptr);
    if (same) return u;
    memory s = scratch();
    reorder.execute(Stream(), u, s);
    return s;
  }
  // The memory the primitive writes an output to; pass it to out_done afterwards.
  memory out(void* ptr) const { return same ? memory(user_md, Engine(), ptr) : scratch(); }
  void out_done(memory written, void* ptr) const {
    if (same) return;
    memory u(user_md, Engine(), ptr);
    reorder.execute(Stream(), written, u);
  }
};

// Primitive attributes: the scratchpad is ours (an arena), not allocated per primitive.
dnnl::primitive_attr Attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// Adds the scratchpad argument of a primitive whose descriptor asks for one.
void AddScratchpad(std::unordered_map<int, memory>& args, const memory::desc& md) {
  if (md.get_size() > 0) args.emplace(DNNL_ARG_SCRATCHPAD, memory(md, Engine(), Arena(kScratchpadSlot, md.get_size())));
}

memory::desc Plain(const memory::dims& dims, tag t) { return memory::desc(dims, dt::f32, t); }

struct ConvDescs {
  memory::dims src, wei, bia, dst, strides, pl, pr;
  explicit ConvDescs(const ConvGeom& g)
      : src{g.n, g.c, g.h, g.w},
        wei{g.f, g.c, g.kh, g.kw},
        bia{g.f},
        dst{g.n, g.f, g.oh, g.ow},
        strides{g.sh, g.sw},
        pl{g.ph, g.pw},
        pr{g.prh(), g.prw()} {}
  memory::desc any(const memory::dims& d) const { return memory::desc(d, dt::f32, tag::any); }
};

template <typename T>
std::unordered_map<std::string, std::unique_ptr<T>>& Cache() {
  static std::unordered_map<std::string, std::unique_ptr<T>> cache;
  return cache;
}

// The cached entry under `key`, created by make() (a std::unique_ptr<T>) on the first lookup; callers
// hold CacheMutex. make() builds the primitive descriptors, so a hit costs one hash lookup.
template <typename T, typename Make>
T& Cached(const std::string& key, Make make) {
  auto& cache = Cache<T>();
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  return *cache.emplace(key, make()).first->second;
}

dnnl::convolution_forward::primitive_desc ForwardPd(const ConvGeom& g, bool bias) {
  ConvDescs d(g);
  // forward_training: the descriptor backward's primitives take as their hint.
  auto desc = bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                                     d.any(d.src), d.any(d.wei), Plain(d.bia, tag::x), d.any(d.dst), d.strides, d.pl, d.pr)
                   : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                                     d.any(d.src), d.any(d.wei), d.any(d.dst), d.strides, d.pl, d.pr);
  return dnnl::convolution_forward::primitive_desc(desc, Attr(), Engine());
}

// One tensor of a convolution primitive: its execution argument (DNNL_ARG_…), the user's plain
// layout, and the primitive's layout (queried from its primitive descriptor).
struct ConvTensor {
  int arg;
  memory::desc user;
  memory::desc prim;
};

// A convolution primitive (forward, backward-data or backward-weights) with its staged tensors:
// each of the three reads two tensors and writes one, any of them possibly in a blocked layout
// (reordered at the edges, arena slots 0–2), and optionally reads or writes a plain bias vector.
struct ConvPrimitive {
  dnnl::primitive prim;
  int in_arg[2] = {0, 0};
  Staged in[2];
  int out_arg = 0;
  Staged out;
  int bias_arg = 0;  // DNNL_ARG_BIAS or DNNL_ARG_DIFF_BIAS; 0 when the primitive has none.
  memory::desc bias;
  memory::desc scratchpad;
  std::string impl;

  // Runs the primitive on user pointers (inputs a0, a1; output o; bias b when it has one).
  void run(void* a0, void* a1, void* o, void* b) const {
    memory dst = out.out(o);
    std::unordered_map<int, memory> args{{in_arg[0], in[0].in(a0)}, {in_arg[1], in[1].in(a1)}, {out_arg, dst}};
    if (bias_arg) args.emplace(bias_arg, memory(bias, Engine(), b));
    AddScratchpad(args, scratchpad);
    prim.execute(Stream(), args);
    out.out_done(dst, o);
    Stream().wait();
  }
};

// A ConvPrimitive from its primitive descriptor: inputs in0, in1, output out, bias argument (0: none).
template <typename Prim, typename Pd>
std::unique_ptr<ConvPrimitive> MakeConv(const Pd& pd, const ConvTensor& in0, const ConvTensor& in1, const ConvTensor& out, int bias_arg,
                                        const memory::dims& bias_dims) {
  auto e = std::make_unique<ConvPrimitive>();
  e->prim = Prim(pd);
  e->in_arg[0] = in0.arg;
  e->in_arg[1] = in1.arg;
  e->out_arg = out.arg;
  e->in[0].init(in0.user, in0.prim, true, 0);
  e->in[1].init(in1.user, in1.prim, true, 1);
  e->out.init(out.user, out.prim, false, 2);
  e->bias_arg = bias_arg;
  if (bias_arg) e->bias = Plain(bias_dims, tag::x);
  e->scratchpad = pd.scratchpad_desc();
  e->impl = pd.impl_info_str();
  return e;
}

// The cache key of a convolution primitive: kind, geometry, and the user layouts of its activations.
std::string ConvKey(const ConvGeom& g, const char* kind, tag src, tag dst) {
  return g.key(kind) + LayoutKey(src) + "|" + LayoutKey(dst);
}

// y = conv(x, w) + b: inputs (x, w), output y, bias input b; x and y in the user layouts `src`, `dst`.
ConvPrimitive& GetConvForward(const ConvGeom& g, bool bias, tag src = tag::nchw, tag dst = tag::nchw) {
  return Cached<ConvPrimitive>(ConvKey(g, bias ? "fb" : "f", src, dst), [&] {
    ConvDescs d(g);
    auto pd = ForwardPd(g, bias);
    return MakeConv<dnnl::convolution_forward>(pd, {DNNL_ARG_SRC, Plain(d.src, src), pd.src_desc()},
                                               {DNNL_ARG_WEIGHTS, Plain(d.wei, tag::oihw), pd.weights_desc()},
                                               {DNNL_ARG_DST, Plain(d.dst, dst), pd.dst_desc()}, bias ? DNNL_ARG_BIAS : 0, d.bia);
  });
}

// dx = ∂⟨dy, conv(x, w)⟩/∂x: inputs (dy, w), output dx; dx in the user layout `src` (x's), dy in `dst` (y's).
ConvPrimitive& GetConvBackwardData(const ConvGeom& g, tag src = tag::nchw, tag dst = tag::nchw) {
  return Cached<ConvPrimitive>(ConvKey(g, "bd", src, dst), [&] {
    ConvDescs d(g);
    auto desc = dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, d.any(d.src), d.any(d.wei), d.any(d.dst),
                                                      d.strides, d.pl, d.pr);
    auto pd = dnnl::convolution_backward_data::primitive_desc(desc, Attr(), Engine(), ForwardPd(g, false));
    return MakeConv<dnnl::convolution_backward_data>(pd, {DNNL_ARG_DIFF_DST, Plain(d.dst, dst), pd.diff_dst_desc()},
                                                     {DNNL_ARG_WEIGHTS, Plain(d.wei, tag::oihw), pd.weights_desc()},
                                                     {DNNL_ARG_DIFF_SRC, Plain(d.src, src), pd.diff_src_desc()}, 0, d.bia);
  });
}

// dw, db = ∂⟨dy, conv(x, w) + b⟩/∂(w, b): inputs (x, dy), output dw, bias output db; x in the
// user layout `src`, dy in `dst`.
ConvPrimitive& GetConvBackwardWeights(const ConvGeom& g, bool bias, tag src = tag::nchw, tag dst = tag::nchw) {
  return Cached<ConvPrimitive>(ConvKey(g, bias ? "bwb" : "bw", src, dst), [&] {
    ConvDescs d(g);
    auto desc = bias ? dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, d.any(d.src), d.any(d.wei),
                                                                Plain(d.bia, tag::x), d.any(d.dst), d.strides, d.pl, d.pr)
                     : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, d.any(d.src), d.any(d.wei),
                                                                d.any(d.dst), d.strides, d.pl, d.pr);
    auto pd = dnnl::convolution_backward_weights::primitive_desc(desc, Attr(), Engine(), ForwardPd(g, bias));
    return MakeConv<dnnl::convolution_backward_weights>(pd, {DNNL_ARG_SRC, Plain(d.src, src), pd.src_desc()},
                                                        {DNNL_ARG_DIFF_DST, Plain(d.dst, dst), pd.diff_dst_desc()},
                                                        {DNNL_ARG_DIFF_WEIGHTS, Plain(d.wei, tag::oihw), pd.diff_weights_desc()},
                                                        bias ? DNNL_ARG_DIFF_BIAS : 0, d.bia);
  });
}

struct PoolForward {
  dnnl::pooling_forward prim;
  memory::desc src, dst, ws, scratchpad;
  bool has_ws = false;
  std::string impl;
};

struct PoolBackward {
  dnnl::pooling_backward prim;
  memory::desc diff_src, diff_dst, ws, scratchpad;
  bool has_ws = false;
  std::string impl;
};

dnnl::algorithm PoolAlgorithm(bool max) {
  // Average pooling divides by KH·KW, padded zeros included (PyTorch's count_include_pad=True).
  return max ? dnnl::algorithm::pooling_max : dnnl::algorithm::pooling_avg_include_padding;
}

// `t`: the activations' layout (nchw for the entries; the layout benchmark also passes blocked nChw8c/nChw16c).
dnnl::pooling_forward::primitive_desc PoolForwardPd(const PoolGeom& g, bool max, tag t = tag::nchw) {
  auto desc = dnnl::pooling_forward::desc(dnnl::prop_kind::forward_training, PoolAlgorithm(max), Plain({g.n, g.c, g.h, g.w}, t),
                                          Plain({g.n, g.c, g.oh, g.ow}, t), {g.sh, g.sw}, {g.kh, g.kw}, {g.ph, g.pw},
                                          {g.prh(), g.prw()});
  return dnnl::pooling_forward::primitive_desc(desc, Attr(), Engine());
}

PoolForward& GetPoolForward(const PoolGeom& g, bool max, tag t = tag::nchw) {
  const std::string kind = std::string(max ? "pmax" : "pavg") + (t == tag::nchw ? "" : t == tag::nChw8c ? "/8c" : "/16c");
  return Cached<PoolForward>(g.key(kind.c_str()), [&] {
    auto pd = PoolForwardPd(g, max, t);
    auto e = std::make_unique<PoolForward>();
    e->prim = dnnl::pooling_forward(pd);
    e->src = pd.src_desc();
    e->dst = pd.dst_desc();
    e->ws = pd.workspace_desc();
    e->has_ws = e->ws.get_size() > 0;
    e->scratchpad = pd.scratchpad_desc();
    e->impl = pd.impl_info_str();
    return e;
  });
}

PoolBackward& GetPoolBackward(const PoolGeom& g, bool max, tag t = tag::nchw) {
  const std::string kind = std::string(max ? "bmax" : "bavg") + (t == tag::nchw ? "" : t == tag::nChw8c ? "/8c" : "/16c");
  return Cached<PoolBackward>(g.key(kind.c_str()), [&] {
    auto hint = PoolForwardPd(g, max, t);
    auto desc = dnnl::pooling_backward::desc(PoolAlgorithm(max), Plain({g.n, g.c, g.h, g.w}, t),
                                             Plain({g.n, g.c, g.oh, g.ow}, t), {g.sh, g.sw}, {g.kh, g.kw}, {g.ph, g.pw},
                                             {g.prh(), g.prw()});
    auto pd = dnnl::pooling_backward::primitive_desc(desc, Attr(), Engine(), hint);
    auto e = std::make_unique<PoolBackward>();
    e->prim = dnnl::pooling_backward(pd);
    e->diff_src = pd.diff_src_desc();
    e->diff_dst = pd.diff_dst_desc();
    e->ws = pd.workspace_desc();
    e->has_ws = e->ws.get_size() > 0;
    e->scratchpad = pd.scratchpad_desc();
    e->impl = pd.impl_info_str();
    return e;
  });
}

// Batch-normalization geometry, from an Int32Array [N, C, S]: N samples of C channels with S
// entries each (S = H·W after a convolution, 1 after a dense layer), stored sample-major then
// channel-major (NCHW, or N×C).
struct BnGeom {
  int64_t n, c, s;
  // The activations' layout (GetLayout): NCHW, or blocked nChw8c / nChw16c between oneDNN layers.
  tag layout = tag::nchw;
  // N×C as oneDNN's 2-D `nc`; N×C×S as `nchw` with W = 1 (the statistics run over N·H·W either
  // way). A blocked N×C×H×W tensor is the blocked N×C×(H·W)×1 one entry for entry: offset
  // ((n·C/b + c/b)·H·W + h·W + w)·b + c mod b either way.
  memory::desc data() const { return s == 1 ? Plain({n, c}, tag::nc) : Plain({n, c, s, 1}, layout); }
  int64_t size() const { return n * c * s; }
};

// Flags of the batch-norm entries (bit mask).
constexpr int kBnGlobalStats = 1;  // Evaluation mode: normalize with the given (running) mean and variance.
constexpr int kBnAffine = 2;       // y = γ ⊙ x̂ + β, γ (scale) and β (shift) given.

dnnl::normalization_flags BnFlags(int flags) {
  auto f = dnnl::normalization_flags::none;
  if (flags & kBnGlobalStats) f |= dnnl::normalization_flags::use_global_stats;
  if (flags & kBnAffine) f |= dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  return f;
}

std::string BnKey(const char* kind, const BnGeom& g, int flags, float eps) {
  uint32_t bits;
  std::memcpy(&bits, &eps, sizeof bits);
  std::string k = KeyPrefix(kind);
  for (int64_t v : {g.n, g.c, g.s, static_cast<int64_t>(flags), static_cast<int64_t>(bits)}) k += "," + std::to_string(v);
  return k + LayoutKey(g.layout);
}

// forward_training in both modes: with use_global_stats it reads the given statistics instead of
// computing them, and it is the hint the backward primitive needs.
dnnl::batch_normalization_forward::primitive_desc BnForwardPd(const BnGeom& g, int flags, float eps) {
  auto desc = dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_training, g.data(), eps, BnFlags(flags));
  return dnnl::batch_normalization_forward::primitive_desc(desc, Attr(), Engine());
}

// A batch-norm primitive (forward or backward) on plain user memory: no reorders.
struct BnPrimitive {
  dnnl::primitive prim;
  memory::desc data;        // x, y, dy, dx
  memory::desc stat;        // per-channel vectors: mean, variance, scale, shift and their gradients
  memory::desc scratchpad;
};

BnPrimitive& GetBnForward(const BnGeom& g, int flags, float eps) {
  return Cached<BnPrimitive>(BnKey("bnf", g, flags, eps), [&] {
    auto pd = BnForwardPd(g, flags, eps);
    auto e = std::make_unique<BnPrimitive>();
    e->prim = dnnl::batch_normalization_forward(pd);
    e->data = pd.src_desc();
    e->stat = pd.mean_desc();
    e->scratchpad = pd.scratchpad_desc();
    return e;
  });
}

// prop_kind::backward (data, scale and shift gradients) when affine, else backward_data.
BnPrimitive& GetBnBackward(const BnGeom& g, int flags, float eps) {
  return Cached<BnPrimitive>(BnKey("bnb", g, flags, eps), [&] {
    const auto prop = flags & kBnAffine ? dnnl::prop_kind::backward : dnnl::prop_kind::backward_data;
    auto desc = dnnl::batch_normalization_backward::desc(prop, g.data(), g.data(), eps, BnFlags(flags));
    auto pd = dnnl::batch_normalization_backward::primitive_desc(desc, Attr(), Engine(), BnForwardPd(g, flags, eps));
    auto e = std::make_unique<BnPrimitive>();
    e->prim = dnnl::batch_normalization_backward(pd);
    e->data = pd.src_desc();
    e->stat = pd.mean_desc();
    e->scratchpad = pd.scratchpad_desc();
    return e;
  });
}

// Runs body, turning a dnnl::error (or any std::exception) into a JS error naming fn.
template <typename F>
napi_value Guard(napi_env env, const char* fn, F body) {
  try {
    std::lock_guard<std::mutex> lock(CacheMutex());
    return body();
  } catch (const dnnl::error& e) {
    ThrowError(env, fn, std::string("oneDNN: ") + e.what() + " (status " + std::to_string(static_cast<int>(e.status)) + ")");
  } catch (const std::exception& e) {
    ThrowError(env, fn, e.what());
  }
  return nullptr;
}

// dnnConvForward(geometry, x, w, b | null, y, xLayout?, yLayout?): y = conv(x, w) + b, float32,
// activations NCHW or blocked (GetLayout), weights OIHW.
napi_value ConvForwardEntry(napi_env env, napi_callback_info info) {
  const char* fn = "dnnConvForward";
  napi_value argv[7];
  ConvGeom g;
  void *x, *w, *b, *y;
  size_t lx, lw, lb, ly;
  tag lx_tag, ly_tag;
  if (!GetArgsOptional(env, info, fn, 5, 2, argv) || !GetConvGeom(env, argv[0], fn, &g) ||
      !GetLayout(env, argv[5], fn, "xLayout", &lx_tag) || !GetLayout(env, argv[6], fn, "yLayout", &ly_tag) ||
      !GetTyped(env, argv[1], fn, "x", napi_float32_array, false, &x, &lx) ||
      !GetTyped(env, argv[2], fn, "w", napi_float32_array, false, &w, &lw) ||
      !GetTyped(env, argv[3], fn, "b", napi_float32_array, true, &b, &lb) ||
      !GetTyped(env, argv[4], fn, "y", napi_float32_array, false, &y, &ly) || !CheckLength(env, fn, "x", lx, g.n * g.c * g.h * g.w) ||
      !CheckLength(env, fn, "w", lw, g.f * g.c * g.kh * g.kw) || (b && !CheckLength(env, fn, "b", lb, g.f)) ||
      !CheckLength(env, fn, "y", ly, g.n * g.f * g.oh * g.ow)) {
    return nullptr;
  }
  return Guard(env, fn, [&]() -> napi_value {
    GetConvForward(g, b != nullptr, lx_tag, ly_tag).run(x, w, y, b);
    return nullptr;
  });
}

// dnnConvBackwardData(geometry, dy, w, dx, xLayout?, yLayout?): dx = ∂⟨dy, conv(x, w)⟩/∂x
// (overwritten); dx in x's layout, dy in y's.
napi_value ConvBackwardDataEntry(napi_env env, napi_callback_info info) {
  const char* fn = "dnnConvBackwardData";
  napi_value argv[6];
  ConvGeom g;
  void *dy, *w, *dx;
  size_t ldy, lw, ldx;
  tag lx_tag, ly_tag;
  if (!GetArgsOptional(env, info, fn, 4, 2, argv) || !GetConvGeom(env, argv[0], fn, &g) ||
      !GetLayout(env, argv[4], fn, "xLayout", &lx_tag) || !GetLayout(env, argv[5], fn, "yLayout", &ly_tag) ||
      !GetTyped(env, argv[1], fn, "dy", napi_float32_array, false, &dy, &ldy) ||
      !GetTyped(env, argv[2], fn, "w", napi_float32_array, false, &w, &lw) ||
      !GetTyped(env, argv[3], fn, "dx", napi_float32_array, false, &dx, &ldx) ||
      !CheckLength(env, fn, "dy", ldy, g.n * g.f * g.oh * g.ow) || !CheckLength(env, fn, "w", lw, g.f * g.c * g.kh * g.kw) ||
      !CheckLength(env, fn, "dx", ldx, g.n * g.c * g.h * g.w)) {
    return nullptr;
  }
  return Guard(env, fn, [&]() -> napi_value {
    GetConvBackwardData(g, lx_tag, ly_tag).run(dy, w, dx, nullptr);
    return nullptr;
  });
}

// dnnConvBackwardWeights(geometry, x, dy, dw, db | null, xLayout?, yLayout?): dw, db =
// ∂⟨dy, conv(x, w) + b⟩/∂(w, b) (overwritten); x in its layout, dy in y's.
napi_value ConvBackwardWeightsEntry(napi_env env, napi_callback_info info) {
  const char* fn = "dnnConvBackwardWeights";
  napi_value argv[7];
  ConvGeom g;
  void *x, *dy, *dw, *db;
  size_t lx, ldy, ldw, ldb;
  tag lx_tag, ly_tag;
  if (!GetArgsOptional(env, info, fn, 5, 2, argv) || !GetConvGeom(env, argv[0], fn, &g) ||
      !GetLayout(env, argv[5], fn, "xLayout", &lx_tag) || !GetLayout(env, argv[6], fn, "yLayout", &ly_tag) ||
      !GetTyped(env, argv[1], fn, "x", napi_float32_array, false, &x, &lx) ||
      !GetTyped(env, argv[2], fn, "dy", napi_float32_array, false, &dy, &ldy) ||
      !GetTyped(env, argv[3], fn, "dw", napi_float32_array, false, &dw, &ldw) ||
      !GetTyped(env, argv[4], fn, "db", napi_float32_array, true, &db, &ldb) ||
      !CheckLength(env, fn, "x", lx, g.n * g.c * g.h * g.w) || !CheckLength(env, fn, "dy", ldy, g.n * g.f * g.oh * g.ow) ||
      !CheckLength(env, fn, "dw", ldw, g.f * g.c * g.kh * g.kw) || (db && !CheckLength(env, fn, "db", ldb, g.f))) {
    return nullptr;
  }
  return Guard(env, fn, [&]() -> napi_value {
    GetConvBackwardWeights(g, db != nullptr, lx_tag, ly_tag).run(x, dy, dw, db);
    return nullptr;
  });
}

// dnnPoolWorkspaceBytes(geometry, max, xLayout?) → bytes of the workspace max pooling's forward writes for backward (0 for average).
napi_value PoolWorkspaceEntry(napi_env env, napi_callback_info info) {
  const char* fn = "dnnPoolWorkspaceBytes";
  napi_value argv[3];
  PoolGeom g;
  bool max;
  tag lx_tag;
  if (!GetArgsOptional(env, info, fn, 2, 1, argv) || !GetPoolGeom(env, argv[0], fn, &g) || !GetLayout(env, argv[2], fn, "xLayout", &lx_tag))
    return nullptr;
  if (napi_get_value_bool(env, argv[1], &max) != napi_ok) {
    ThrowError(env, fn, "argument 'max' must be a boolean");
    return nullptr;
  }
  return Guard(env, fn, [&]() -> napi_value {
    auto& e = GetPoolForward(g, max, lx_tag);
    napi_value out;
    napi_create_double(env, e.has_ws ? static_cast<double>(e.ws.get_size()) : 0.0, &out);
    return out;
  });
}

// The user-layout edge of a pooling primitive that runs in layout `prim` (its input's): a Staged
// reorder to or from `user` on a tensor of dims, arena slot `slot` (cached per key).
const Staged& PoolEdge(const std::string& key, const memory::dims& dims, tag prim, tag user, bool input, int slot) {
  struct Entry {
    Staged s;
  };
  return Cached<Entry>(key, [&] {
    auto e = std::make_unique<Entry>();
    e->s.init(Plain(dims, user), Plain(dims, prim), input, slot);
    return e;
  }).s;
}

// dnnPoolForward(geometry, max, x, y, ws | null, xLayout?, yLayout?): max or average pooling,
// float32, run in x's layout (NCHW or blocked) and reordered into y's when that differs; max
// pooling writes its argmax workspace into ws (dnnPoolWorkspaceBytes bytes for x's layout).
napi_value PoolForwardEntry(napi_env env, napi_callback_info info) {
  const char* fn = "dnnPoolForward";
  napi_value argv[7];
  PoolGeom g;
  bool max;
  void *x, *y, *ws;
  size_t lx, ly, lws;
  tag lx_tag, ly_tag;
  if (!GetArgsOptional(env, info, fn, 5, 2, argv) || !GetPoolGeom(env, argv[0], fn, &g) ||
      !GetLayout(env, argv[5], fn, "xLayout", &lx_tag) || !GetLayout(env, argv[6], fn, "yLayout", &ly_tag))
    return nullptr;
  if (napi_get_value_bool(env, argv[1], &max) != napi_ok) {
    ThrowError(env, fn, "argument 'max' must be a boolean");
    return nullptr;
  }
  if (!GetTyped(env, argv[2], fn, "x", napi_float32_array, false, &x, &lx) ||
      !GetTyped(env, argv[3], fn, "y", napi_float32_array, false, &y, &ly) ||
      !GetTyped(env, argv[4], fn, "ws", napi_uint8_array, true, &ws, &lws) || !CheckLength(env, fn, "x", lx, g.n * g.c * g.h * g.w) ||
      !CheckLength(env, fn, "y", ly, g.n * g.c * g.oh * g.ow)) {
    return nullptr;
  }
  return Guard(env, fn, [&]() -> napi_value {
    auto& e = GetPoolForward(g, max, lx_tag);
    const Staged& out = PoolEdge(g.key("pout") + LayoutKey(lx_tag) + "|" + LayoutKey(ly_tag), {g.n, g.c, g.oh, g.ow}, lx_tag, ly_tag, false, 2);
    memory dst = out.out(y);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(e.src, Engine(), x)}, {DNNL_ARG_DST, dst}};
    if (e.has_ws) {
      if (!ws || lws < e.ws.get_size()) {
        ThrowError(env, fn, "argument 'ws' must be a Uint8Array of at least " + std::to_string(e.ws.get_size()) + " bytes");
        return nullptr;
      }
      args.emplace(DNNL_ARG_WORKSPACE, memory(e.ws, Engine(), ws));
    }
    AddScratchpad(args, e.scratchpad);
    e.prim.execute(Stream(), args);
    out.out_done(dst, y);
    Stream().wait();
    return nullptr;
  });
}

// dnnPoolBackward(geometry, max, dy, dx, ws | null, xLayout?, yLayout?): dx = Aᵀ dy (overwritten),
// run in x's layout (dx written in it, dy reordered from y's when that differs), with max
// pooling's selection read from the workspace of the matching forward.
napi_value PoolBackwardEntry(napi_env env, napi_callback_info info) {
  const char* fn = "dnnPoolBackward";
  napi_value argv[7];
  PoolGeom g;
  bool max;
  void *dy, *dx, *ws;
  size_t ldy, ldx, lws;
  tag lx_tag, ly_tag;
  if (!GetArgsOptional(env, info, fn, 5, 2, argv) || !GetPoolGeom(env, argv[0], fn, &g) ||
      !GetLayout(env, argv[5], fn, "xLayout", &lx_tag) || !GetLayout(env, argv[6], fn, "yLayout", &ly_tag))
    return nullptr;
  if (napi_get_value_bool(env, argv[1], &max) != napi_ok) {
    ThrowError(env, fn, "argument 'max' must be a boolean");
    return nullptr;
  }
  if (!GetTyped(env, argv[2], fn, "dy", napi_float32_array, false, &dy, &ldy) ||
      !GetTyped(env, argv[3], fn, "dx", napi_float32_array, false, &dx, &ldx) ||
      !GetTyped(env, argv[4], fn, "ws", napi_uint8_array, true, &ws, &lws) ||
      !CheckLength(env, fn, "dy", ldy, g.n * g.c * g.oh * g.ow) || !CheckLength(env, fn, "dx", ldx, g.n * g.c * g.h * g.w)) {
    return nullptr;
  }
  return Guard(env, fn, [&]() -> napi_value {
    auto& e = GetPoolBackward(g, max, lx_tag);
    const Staged& in = PoolEdge(g.key("pdy") + LayoutKey(lx_tag) + "|" + LayoutKey(ly_tag), {g.n, g.c, g.oh, g.ow}, lx_tag, ly_tag, true, 0);
    std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, in.in(dy)},
                                         {DNNL_ARG_DIFF_SRC, memory(e.diff_src, Engine(), dx)}};
    if (e.has_ws) {
      if (!ws || lws < e.ws.get_size()) {
        ThrowError(env, fn, "argument 'ws' must be the forward's workspace (" + std::to_string(e.ws.get_size()) + " bytes)");
        return nullptr;
      }
      args.emplace(DNNL_ARG_WORKSPACE, memory(e.ws, Engine(), ws));
    }
    AddScratchpad(args, e.scratchpad);
    e.prim.execute(Stream(), args);
    Stream().wait();
    return nullptr;
  });
}

// The common arguments of the batch-norm entries: geometry [N, C, S], flags (kBn…), epsilon.
bool GetBnArgs(napi_env env, const char* fn, napi_value* argv, BnGeom* g, int* flags, float* eps) {
  int64_t a[3];
  if (!GetGeom(env, argv[0], fn, 3, a)) return false;
  *g = {a[0], a[1], a[2]};
  int32_t f = 0;
  double e = 0;
  if (napi_get_value_int32(env, argv[1], &f) != napi_ok || f < 0 || f > 3) return ThrowError(env, fn, "argument 'flags' must be 0–3");
  if (napi_get_value_double(env, argv[2], &e) != napi_ok || !(e > 0)) return ThrowError(env, fn, "argument 'epsilon' must be a positive number");
  *flags = f;
  *eps = static_cast<float>(e);
  if (g->n < 1 || g->c < 1 || g->s < 1) return ThrowError(env, fn, "geometry entries must be positive");
  return true;
}

// dnnBatchNormForward(geometry, flags, epsilon, x, scale | null, shift | null, mean, variance, y, layout?):
// y = γ ⊙ (x − μ)/√(σ² + ε) + β per channel. Training (flags without kBnGlobalStats): μ and the
// biased σ² of the batch are written to mean and variance; evaluation: they are read from them.
napi_value BnForwardEntry(napi_env env, napi_callback_info info) {
  const char* fn = "dnnBatchNormForward";
  napi_value argv[10];
  BnGeom g;
  int flags;
  float eps;
  void *x, *scale, *shift, *mean, *var, *y;
  size_t lx, lscale, lshift, lmean, lvar, ly;
  if (!GetArgsOptional(env, info, fn, 9, 1, argv) || !GetBnArgs(env, fn, argv, &g, &flags, &eps) ||
      !GetLayout(env, argv[9], fn, "layout", &g.layout))
    return nullptr;
  const bool affine = flags & kBnAffine;
  if (!GetTyped(env, argv[3], fn, "x", napi_float32_array, false, &x, &lx) ||
      !GetTyped(env, argv[4], fn, "scale", napi_float32_array, !affine, &scale, &lscale) ||
      !GetTyped(env, argv[5], fn, "shift", napi_float32_array, !affine, &shift, &lshift) ||
      !GetTyped(env, argv[6], fn, "mean", napi_float32_array, false, &mean, &lmean) ||
      !GetTyped(env, argv[7], fn, "variance", napi_float32_array, false, &var, &lvar) ||
      !GetTyped(env, argv[8], fn, "y", napi_float32_array, false, &y, &ly) || !CheckLength(env, fn, "x", lx, g.size()) ||
      (affine && (!CheckLength(env, fn, "scale", lscale, g.c) || !CheckLength(env, fn, "shift", lshift, g.c))) ||
      !CheckLength(env, fn, "mean", lmean, g.c) || !CheckLength(env, fn, "variance", lvar, g.c) || !CheckLength(env, fn, "y", ly, g.size())) {
    return nullptr;
  }
  return Guard(env, fn, [&]() -> napi_value {
    auto& e = GetBnForward(g, flags, eps);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(e.data, Engine(), x)},
                                         {DNNL_ARG_DST, memory(e.data, Engine(), y)},
                                         {DNNL_ARG_MEAN, memory(e.stat, Engine(), mean)},
                                         {DNNL_ARG_VARIANCE, memory(e.stat, Engine(), var)}};
    if (affine) {
      args.emplace(DNNL_ARG_SCALE, memory(e.stat, Engine(), scale));
      args.emplace(DNNL_ARG_SHIFT, memory(e.stat, Engine(), shift));
    }
    AddScratchpad(args, e.scratchpad);
    e.prim.execute(Stream(), args);
    Stream().wait();
    return nullptr;
  });
}

// dnnBatchNormBackward(geometry, flags, epsilon, x, dy, mean, variance, scale | null, shift | null,
// dx | null, dscale | null, dshift | null, layout?): the VJP of dnnBatchNormForward with the statistics of its call.
// Training: through μ and σ² (dx = s·(g − mean(g) − x̂ ⊙ mean(x̂ ⊙ g)), g = γ ⊙ dy); evaluation:
// dx = γ·s·dy. dscale = Σ dy ⊙ x̂, dshift = Σ dy (affine only). Outputs are overwritten; a null
// output is computed into scratch and dropped. oneDNN 2.x's backward with use_shift wants the shift
// argument too, although dx and dγ do not depend on β.
napi_value BnBackwardEntry(napi_env env, napi_callback_info info) {
  const char* fn = "dnnBatchNormBackward";
  napi_value argv[13];
  BnGeom g;
  int flags;
  float eps;
  void *x, *dy, *mean, *var, *scale, *shift, *dx, *dscale, *dshift;
  size_t lx, ldy, lmean, lvar, lscale, lshift, ldx, ldscale, ldshift;
  if (!GetArgsOptional(env, info, fn, 12, 1, argv) || !GetBnArgs(env, fn, argv, &g, &flags, &eps) ||
      !GetLayout(env, argv[12], fn, "layout", &g.layout))
    return nullptr;
  const bool affine = flags & kBnAffine;
  if (!GetTyped(env, argv[3], fn, "x", napi_float32_array, false, &x, &lx) ||
      !GetTyped(env, argv[4], fn, "dy", napi_float32_array, false, &dy, &ldy) ||
      !GetTyped(env, argv[5], fn, "mean", napi_float32_array, false, &mean, &lmean) ||
      !GetTyped(env, argv[6], fn, "variance", napi_float32_array, false, &var, &lvar) ||
      !GetTyped(env, argv[7], fn, "scale", napi_float32_array, !affine, &scale, &lscale) ||
      !GetTyped(env, argv[8], fn, "shift", napi_float32_array, !affine, &shift, &lshift) ||
      !GetTyped(env, argv[9], fn, "dx", napi_float32_array, true, &dx, &ldx) ||
      !GetTyped(env, argv[10], fn, "dscale", napi_float32_array, true, &dscale, &ldscale) ||
      !GetTyped(env, argv[11], fn, "dshift", napi_float32_array, true, &dshift, &ldshift) ||
      !CheckLength(env, fn, "x", lx, g.size()) || !CheckLength(env, fn, "dy", ldy, g.size()) ||
      !CheckLength(env, fn, "mean", lmean, g.c) || !CheckLength(env, fn, "variance", lvar, g.c) ||
      (affine && (!CheckLength(env, fn, "scale", lscale, g.c) || !CheckLength(env, fn, "shift", lshift, g.c))) || (dx && !CheckLength(env, fn, "dx", ldx, g.size())) ||
      (dscale && !CheckLength(env, fn, "dscale", ldscale, g.c)) || (dshift && !CheckLength(env, fn, "dshift", ldshift, g.c))) {
    return nullptr;
  }
  return Guard(env, fn, [&]() -> napi_value {
    auto& e = GetBnBackward(g, flags, eps);
    // Outputs the caller does not want go to the arenas (slots 0–2 are free: no reorders here).
    void* diff_src = dx ? dx : Arena(0, e.data.get_size());
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(e.data, Engine(), x)},
                                         {DNNL_ARG_DIFF_DST, memory(e.data, Engine(), dy)},
                                         {DNNL_ARG_MEAN, memory(e.stat, Engine(), mean)},
                                         {DNNL_ARG_VARIANCE, memory(e.stat, Engine(), var)},
                                         {DNNL_ARG_DIFF_SRC, memory(e.data, Engine(), diff_src)}};
    if (affine) {
      args.emplace(DNNL_ARG_SCALE, memory(e.stat, Engine(), scale));
      args.emplace(DNNL_ARG_SHIFT, memory(e.stat, Engine(), shift));
      args.emplace(DNNL_ARG_DIFF_SCALE, memory(e.stat, Engine(), dscale ? dscale : Arena(1, e.stat.get_size())));
      args.emplace(DNNL_ARG_DIFF_SHIFT, memory(e.stat, Engine(), dshift ? dshift : Arena(2, e.stat.get_size())));
    }
    AddScratchpad(args, e.scratchpad);
    e.prim.execute(Stream(), args);
    Stream().wait();
    return nullptr;
  });
}

// ---- Layout benchmark (bench/dnn-layouts.ts only; not used by the backend) ----
// Measures what keeping activations in oneDNN's blocked layouts between layers would save: the
// convolution primitives run on tensors already in their own layouts (no reorder), the reorders
// the plain NCHW/OIHW entries pay at each call's edges (Staged), and pooling / ReLU on nchw versus
// nChw8c/nChw16c. Layouts are described in oneDNN's notation (oneDNN Developer Guide,
// "Understanding Memory Formats"): outer dimensions from the largest stride, upper case when the
// dimension is also blocked, then the inner blocks, e.g. nChw16c, OIhw16i16o, Ohwi16o.

// `md`'s layout in oneDNN's notation, with `letters` naming the dimensions in logical order ("nchw", "oihw").
std::string LayoutName(const memory::desc& md, const char* letters) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.format_kind != dnnl_blocked) return "(not blocked)";
  const auto& b = d.format_desc.blocking;
  std::vector<int> order(d.ndims);
  for (int i = 0; i < d.ndims; i++) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int i, int j) { return b.strides[i] > b.strides[j]; });
  bool blocked[DNNL_MAX_NDIMS] = {};
  for (int k = 0; k < b.inner_nblks; k++) blocked[b.inner_idxs[k]] = true;
  std::string s;
  for (int i : order) s += blocked[i] ? static_cast<char>(letters[i] - 'a' + 'A') : letters[i];
  for (int k = 0; k < b.inner_nblks; k++) s += std::to_string(b.inner_blks[k]) + letters[b.inner_idxs[k]];
  return s;
}

// A tensor of `md`'s layout owned by oneDNN, filled from a plain tensor of `plain`'s layout with
// values sin(i) (through a reorder, so that blocked layouts get their zero padding right).
memory FilledTensor(const memory::desc& md, const memory::desc& plain) {
  std::vector<float> v(plain.get_size() / sizeof(float));
  for (size_t i = 0; i < v.size(); i++) v[i] = static_cast<float>(std::sin(static_cast<double>(i)));
  memory src(plain, Engine(), v.data());
  memory dst(md, Engine());
  dnnl::reorder(src, dst).execute(Stream(), src, dst);
  Stream().wait();
  return dst;
}

double NowMs() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Named timings: each function is run once per round, all in turn (so a drift of the machine's
// speed moves them alike), after one warm-up round; the result is the median per name, in ms.
struct Timings {
  std::vector<std::string> names;
  std::vector<std::function<void()>> runs;
  void add(const std::string& name, std::function<void()> f) {
    names.push_back(name);
    runs.push_back(std::move(f));
  }
  std::vector<double> medians(int reps) const {
    for (const auto& f : runs) f();
    std::vector<std::vector<double>> t(runs.size());
    for (int r = 0; r < reps; r++) {
      for (size_t i = 0; i < runs.size(); i++) {
        const double t0 = NowMs();
        runs[i]();
        t[i].push_back(NowMs() - t0);
      }
    }
    std::vector<double> out;
    for (auto& x : t) {
      std::sort(x.begin(), x.end());
      const size_t h = x.size() / 2;
      out.push_back(x.size() % 2 ? x[h] : (x[h - 1] + x[h]) / 2);
    }
    return out;
  }
};

void SetNumber(napi_env env, napi_value obj, const std::string& name, double v) {
  napi_value x;
  napi_create_double(env, v, &x);
  napi_set_named_property(env, obj, name.c_str(), x);
}

void SetString(napi_env env, napi_value obj, const std::string& name, const std::string& v) {
  napi_value x;
  napi_create_string_utf8(env, v.c_str(), NAPI_AUTO_LENGTH, &x);
  napi_set_named_property(env, obj, name.c_str(), x);
}

// An object { name: ms } of `t`'s medians.
napi_value TimingsObject(napi_env env, const Timings& t, int reps) {
  const std::vector<double> ms = t.medians(reps);
  napi_value obj;
  napi_create_object(env, &obj);
  for (size_t i = 0; i < ms.size(); i++) SetNumber(env, obj, t.names[i], ms[i]);
  return obj;
}

bool GetReps(napi_env env, napi_value v, const char* fn, int32_t* reps) {
  if (napi_get_value_int32(env, v, reps) != napi_ok || *reps < 1 || *reps > 1000) return ThrowError(env, fn, "argument 'reps' must be an integer in 1–1000");
  return true;
}

// dnnConvLayoutBench(geometry, reps) → { layouts, impl, ms }: the convolution primitives of the
// entries (forward with bias, backward-data, backward-weights with bias) timed three ways, medians
// over reps alternating rounds, in ms:
// - "blocked.*": the bare primitive on tensors allocated once in its own layouts (no reorder);
// - "plain.*": the entry's path (plain user tensors, reorders at the call's edges, as
//   dnnConvForward etc. minus the N-API call);
// - "reorder.<pass>.<tensor>": each reorder that path pays (absent when oneDNN's layout is the
//   plain one, so there is none).
// layouts: "<pass>.<tensor>" → the primitive's layout; impl: "<pass>" → oneDNN's implementation.
napi_value ConvLayoutBenchEntry(napi_env env, napi_callback_info info) {
  const char* fn = "dnnConvLayoutBench";
  napi_value argv[2];
  ConvGeom g;
  int32_t reps = 0;
  if (!GetArgs(env, info, fn, 2, argv) || !GetConvGeom(env, argv[0], fn, &g) || !GetReps(env, argv[1], fn, &reps)) return nullptr;
  return Guard(env, fn, [&]() -> napi_value {
    struct Pass {
      const char* name;
      ConvPrimitive* p;
      const char* tensors[3];  // in[0], in[1], out
      const char* letters[3];
    };
    Pass passes[3] = {
        {"forward", &GetConvForward(g, true), {"src", "weights", "dst"}, {"nchw", "oihw", "nchw"}},
        {"backwardData", &GetConvBackwardData(g), {"diffDst", "weights", "diffSrc"}, {"nchw", "oihw", "nchw"}},
        {"backwardWeights", &GetConvBackwardWeights(g, true), {"src", "diffDst", "diffWeights"}, {"nchw", "nchw", "oihw"}},
    };
    // Plain user tensors (inputs filled, outputs overwritten) and blocked ones, per pass and tensor.
    std::vector<std::vector<float>> plain;
    std::vector<memory> blocked;
    memory bias = FilledTensor(Plain({g.f}, tag::x), Plain({g.f}, tag::x));
    Timings t;
    napi_value layouts, impl;
    napi_create_object(env, &layouts);
    napi_create_object(env, &impl);
    plain.reserve(9);
    blocked.reserve(9);
    for (const Pass& pass : passes) {
      const ConvPrimitive& p = *pass.p;
      const Staged* st[3] = {&p.in[0], &p.in[1], &p.out};
      for (int k = 0; k < 3; k++) {
        plain.emplace_back(st[k]->user_md.get_size() / sizeof(float));
        for (size_t i = 0; i < plain.back().size(); i++) plain.back()[i] = static_cast<float>(std::sin(static_cast<double>(i)));
        blocked.push_back(FilledTensor(st[k]->prim_md, st[k]->user_md));
        SetString(env, layouts, std::string(pass.name) + "." + pass.tensors[k], LayoutName(st[k]->prim_md, pass.letters[k]));
      }
      SetString(env, impl, pass.name, p.impl);
    }
    for (int q = 0; q < 3; q++) {
      const ConvPrimitive* p = passes[q].p;
      float* u[3] = {plain[3 * q].data(), plain[3 * q + 1].data(), plain[3 * q + 2].data()};
      memory* m[3] = {&blocked[3 * q], &blocked[3 * q + 1], &blocked[3 * q + 2]};
      void* b = bias.get_data_handle();
      t.add(std::string("blocked.") + passes[q].name, [p, m, b] {
        std::unordered_map<int, memory> args{{p->in_arg[0], *m[0]}, {p->in_arg[1], *m[1]}, {p->out_arg, *m[2]}};
        if (p->bias_arg) args.emplace(p->bias_arg, memory(p->bias, Engine(), b));
        AddScratchpad(args, p->scratchpad);
        p->prim.execute(Stream(), args);
        Stream().wait();
      });
      t.add(std::string("plain.") + passes[q].name, [p, u, b] { p->run(u[0], u[1], u[2], b); });
      const Staged* st[3] = {&p->in[0], &p->in[1], &p->out};
      for (int k = 0; k < 3; k++) {
        if (st[k]->same) continue;
        const Staged* s = st[k];
        memory user(s->user_md, Engine(), u[k]);
        memory prim = *m[k];
        const bool input = k < 2;
        t.add(std::string("reorder.") + passes[q].name + "." + passes[q].tensors[k], [s, user, prim, input]() mutable {
          if (input) s->reorder.execute(Stream(), user, prim);
          else s->reorder.execute(Stream(), prim, user);
          Stream().wait();
        });
      }
    }
    napi_value out;
    napi_create_object(env, &out);
    napi_set_named_property(env, out, "layouts", layouts);
    napi_set_named_property(env, out, "impl", impl);
    napi_set_named_property(env, out, "ms", TimingsObject(env, t, reps));
    return out;
  });
}

// dnnPoolLayoutBench(geometry, reps, block) → { layouts, impl, ms }: max pooling forward (training) and
// backward, and oneDNN's ReLU (eltwise) forward and backward on the pooling's input, on nchw
// ("plain.*") and on nChw<block>c ("blocked.*", block 8 or 16), medians over reps alternating
// rounds, in ms; plus "reorder.{src,dst}To{Blocked,Plain}", the reorders between nchw and
// nChw<block>c of the pooling's input and output (what a blocked pipeline pays where it meets a
// plain layer).
napi_value PoolLayoutBenchEntry(napi_env env, napi_callback_info info) {
  const char* fn = "dnnPoolLayoutBench";
  napi_value argv[3];
  PoolGeom g;
  int32_t reps = 0, block = 0;
  if (!GetArgs(env, info, fn, 3, argv) || !GetPoolGeom(env, argv[0], fn, &g) || !GetReps(env, argv[1], fn, &reps)) return nullptr;
  if (napi_get_value_int32(env, argv[2], &block) != napi_ok || (block != 8 && block != 16)) {
    ThrowError(env, fn, "argument 'block' must be 8 or 16");
    return nullptr;
  }
  return Guard(env, fn, [&]() -> napi_value {
    const tag bt = block == 16 ? tag::nChw16c : tag::nChw8c;
    const memory::dims in_dims{g.n, g.c, g.h, g.w}, out_dims{g.n, g.c, g.oh, g.ow};
    Timings t;
    napi_value layouts, impl;
    napi_create_object(env, &layouts);
    napi_create_object(env, &impl);
    // The timed closures hold copies of their oneDNN memories (shared handles: the buffers live as long as they do).
    for (const tag lt : {tag::nchw, bt}) {
      const std::string side = lt == tag::nchw ? "plain" : "blocked";
      const memory::desc in_md = Plain(in_dims, lt), out_md = Plain(out_dims, lt);
      SetString(env, layouts, side, LayoutName(in_md, "nchw"));
      const PoolForward* f = &GetPoolForward(g, true, lt);
      const PoolBackward* bk = &GetPoolBackward(g, true, lt);
      SetString(env, impl, side + ".poolForward", f->impl);
      SetString(env, impl, side + ".poolBackward", bk->impl);
      memory x = FilledTensor(in_md, Plain(in_dims, tag::nchw)), y(out_md, Engine()), ws(f->ws, Engine());
      memory dy = FilledTensor(out_md, Plain(out_dims, tag::nchw)), dx(in_md, Engine());
      t.add(side + ".poolForward", [f, x, y, ws] {
        std::unordered_map<int, memory> args{{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, y}, {DNNL_ARG_WORKSPACE, ws}};
        AddScratchpad(args, f->scratchpad);
        f->prim.execute(Stream(), args);
        Stream().wait();
      });
      t.add(side + ".poolBackward", [bk, dy, dx, ws] {
        std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_SRC, dx}, {DNNL_ARG_WORKSPACE, ws}};
        AddScratchpad(args, bk->scratchpad);
        bk->prim.execute(Stream(), args);
        Stream().wait();
      });
      // ReLU (oneDNN eltwise, default scratchpad: not cached, benchmark only) on the pooling's input.
      auto rf_pd = dnnl::eltwise_forward::primitive_desc(
          dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::eltwise_relu, in_md, 0.f), Engine());
      auto rb_pd = dnnl::eltwise_backward::primitive_desc(dnnl::eltwise_backward::desc(dnnl::algorithm::eltwise_relu, in_md, in_md, 0.f),
                                                          Engine(), rf_pd);
      SetString(env, impl, side + ".reluForward", rf_pd.impl_info_str());
      dnnl::eltwise_forward rf(rf_pd);
      dnnl::eltwise_backward rb(rb_pd);
      memory r(in_md, Engine()), dr = FilledTensor(in_md, Plain(in_dims, tag::nchw)), dxr(in_md, Engine());
      t.add(side + ".reluForward", [rf, x, r] {
        rf.execute(Stream(), {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, r}});
        Stream().wait();
      });
      t.add(side + ".reluBackward", [rb, x, dr, dxr] {
        rb.execute(Stream(), {{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, dr}, {DNNL_ARG_DIFF_SRC, dxr}});
        Stream().wait();
      });
    }
    for (const bool src : {true, false}) {
      const memory::dims& dims = src ? in_dims : out_dims;
      memory p = FilledTensor(Plain(dims, tag::nchw), Plain(dims, tag::nchw)), b = FilledTensor(Plain(dims, bt), Plain(dims, tag::nchw));
      dnnl::reorder to_blocked(p, b), to_plain(b, p);
      t.add(src ? "reorder.srcToBlocked" : "reorder.dstToBlocked", [to_blocked, p, b]() mutable {
        to_blocked.execute(Stream(), p, b);
        Stream().wait();
      });
      t.add(src ? "reorder.srcToPlain" : "reorder.dstToPlain", [to_plain, p, b]() mutable {
        to_plain.execute(Stream(), b, p);
        Stream().wait();
      });
    }
    napi_value out;
    napi_create_object(env, &out);
    napi_set_named_property(env, out, "layouts", layouts);
    napi_set_named_property(env, out, "impl", impl);
    napi_set_named_property(env, out, "ms", TimingsObject(env, t, reps));
    return out;
  });
}

// dnnActivationBlock() → 16, 8 or 0: the channel block of the layout oneDNN's convolutions pick on
// this CPU for a 32-channel activation (nChw16c with AVX-512, nChw8c with AVX2; 0 when they keep
// NCHW), i.e. the blocked layout in which a chain keeps activations between oneDNN layers.
napi_value ActivationBlockEntry(napi_env env, napi_callback_info) {
  return Guard(env, "dnnActivationBlock", [&]() -> napi_value {
    static int block = -1;
    if (block < 0) {
      const ConvGeom g{2, 32, 8, 8, 32, 8, 8, 3, 3, 1, 1, 1, 1};
      const memory::desc src = ForwardPd(g, true).src_desc();
      const memory::dims dims{g.n, g.c, g.h, g.w};
      block = src == Plain(dims, tag::nChw16c) ? 16 : src == Plain(dims, tag::nChw8c) ? 8 : 0;
    }
    napi_value out;
    napi_create_int32(env, block, &out);
    return out;
  });
}

// dnnConvImpl(geometry, which) → the implementation oneDNN chose ("jit:avx2", "gemm:jit", …), for reports.
napi_value ConvImplEntry(napi_env env, napi_callback_info info) {
  const char* fn = "dnnConvImpl";
  napi_value argv[2];
  ConvGeom g;
  int32_t which = 0;
  if (!GetArgs(env, info, fn, 2, argv) || !GetConvGeom(env, argv[0], fn, &g)) return nullptr;
  napi_get_value_int32(env, argv[1], &which);
  return Guard(env, fn, [&]() -> napi_value {
    const std::string s = which == 0 ? GetConvForward(g, true).impl : which == 1 ? GetConvBackwardData(g).impl : GetConvBackwardWeights(g, true).impl;
    napi_value out;
    napi_create_string_utf8(env, s.c_str(), NAPI_AUTO_LENGTH, &out);
    return out;
  });
}

}  // namespace

void RegisterDnn(napi_env env, napi_value exports) {
  const dnnl_version_t* v = dnnl_version();
  const std::string version = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  napi_value ver;
  napi_create_string_utf8(env, version.c_str(), NAPI_AUTO_LENGTH, &ver);
  const napi_property_descriptor props[] = {
      {"dnnConvForward", nullptr, ConvForwardEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dnnConvBackwardData", nullptr, ConvBackwardDataEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dnnConvBackwardWeights", nullptr, ConvBackwardWeightsEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dnnPoolWorkspaceBytes", nullptr, PoolWorkspaceEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dnnPoolForward", nullptr, PoolForwardEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dnnPoolBackward", nullptr, PoolBackwardEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dnnBatchNormForward", nullptr, BnForwardEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dnnBatchNormBackward", nullptr, BnBackwardEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dnnConvImpl", nullptr, ConvImplEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dnnActivationBlock", nullptr, ActivationBlockEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dnnConvLayoutBench", nullptr, ConvLayoutBenchEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dnnPoolLayoutBench", nullptr, PoolLayoutBenchEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dnnlVersion", nullptr, nullptr, nullptr, nullptr, ver, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

#else

void RegisterDnn(napi_env, napi_value) {}

#endif
