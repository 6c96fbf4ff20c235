// chainopt_kernels: multi-threaded element-wise kernels (optimizer updates, ReLU, finiteness
// checks, the softmax cross-entropy) for the addon.
//
// Design notes
// - Every kernel is a loop over independent entries: entry i reads and writes only index i, so
//   the result does not depend on the thread count or the partition at all (the only reductions
//   are the finiteness checks' ORs).
//   The partition is OpenMP's static schedule: contiguous equal blocks, one per thread.
// - Arrays below g_parallel_min entries run on the calling thread (waking the pool costs more).
// - Arithmetic mirrors chainopt's TypeScript loops operation for operation, with the same
//   association (JS's `c * g * g` is (c·g)·g), so that a native update equals the portable one bit
//   for bit (compiled with -ffp-contract=off: no fused multiply-add). Float64 arrays and the
//   momentum/ReLU loops compute in doubles with one rounding per store; the adaptive optimizers
//   compute float32 arrays in float32 (see below), which the portable loops emulate with Math.fround.
// - Each loop exists for the x86-64 baseline and for AVX2, chosen at run time (same bits).
// - OpenMP is the same runtime oneDNN uses; see docs/performance.md for the threading policy.
// - Exception: logisticLoss (softmax cross-entropy) works row by row and sums the rows' losses in
//   row order on the calling thread (still thread-count independent), and its exp/log are the C
//   library's, which differ from JavaScript's in the last bit for some arguments.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "chainopt_dnn.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

// Loops from this many entries on split across threads; below, waking the pool costs more than the
// split gains. Measured with bench/thresholds.ts (docs/performance.md, "Serial thresholds"): with
// passive waits a parallel region costs 25–35 µs on the 2-core machine of BENCHMARKS.md, and the
// split of a memory-bound pass breaks even at about 2^19 entries and gains 1.35× at 2^20. Settable
// for that benchmark (serialThresholds in chainopt_blas.cc).
int64_t g_parallel_min = 1 << 19;

bool Fail(napi_env env, const char* fn, const std::string& message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", (std::string(fn) + ": " + message).c_str());
  return false;
}

struct Arr {
  napi_typedarray_type type = napi_float32_array;
  void* data = nullptr;
  int64_t length = 0;
  bool present = false;
};

// A Float32Array or Float64Array (null/undefined allowed when optional).
bool GetFloat(napi_env env, napi_value v, const char* fn, const char* name, bool optional, Arr* out) {
  napi_valuetype vt;
  napi_typeof(env, v, &vt);
  if (optional && (vt == napi_null || vt == napi_undefined)) return true;
  bool is_typed = false;
  size_t len = 0;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &out->type, &len, &out->data, nullptr, nullptr) != napi_ok ||
      (out->type != napi_float32_array && out->type != napi_float64_array)) {
    return Fail(env, fn, std::string("argument '") + name + "' must be a Float32Array or Float64Array");
  }
  out->length = static_cast<int64_t>(len);
  out->present = true;
  return true;
}

// Reads `count` arguments into a; fewer is an error naming the expected ones (`usage`).
bool Args(napi_env env, napi_callback_info info, const char* fn, size_t count, const char* usage, napi_value* a) {
  size_t argc = count;
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  if (argc < count) return Fail(env, fn, "expected " + std::to_string(count) + " arguments " + usage);
  return true;
}

bool GetNum(napi_env env, napi_value v, const char* fn, const char* name, double* out) {
  if (napi_get_value_double(env, v, out) != napi_ok) return Fail(env, fn, std::string("argument '") + name + "' must be a number");
  return true;
}

bool GetFlag(napi_env env, napi_value v, const char* fn, const char* name, bool* out) {
  if (napi_get_value_bool(env, v, out) != napi_ok) return Fail(env, fn, std::string("argument '") + name + "' must be a boolean");
  return true;
}

bool GetN(napi_env env, napi_value v, const char* fn, int64_t* n) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= 9007199254740991.0) || d != std::floor(d)) {
    return Fail(env, fn, "argument 'n' must be a non-negative integer");
  }
  *n = static_cast<int64_t>(d);
  return true;
}

// All present arrays share the first one's precision and hold at least n entries.
bool Same(napi_env env, const char* fn, int64_t n, std::initializer_list<std::pair<const char*, const Arr*>> arrays) {
  const napi_typedarray_type type = arrays.begin()->second->type;
  for (const auto& [name, a] : arrays) {
    if (!a->present) continue;
    if (a->type != type) return Fail(env, fn, std::string("argument '") + name + "' must have the precision of the others");
    if (a->length < n) {
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE",
                             (std::string(fn) + ": argument '" + name + "' has " + std::to_string(a->length) + " elements, needs n = " +
                              std::to_string(n))
                                 .c_str());
      return false;
    }
  }
  return true;
}

template <typename T>
T* P(const Arr& a) {
  return a.present ? static_cast<T*>(a.data) : nullptr;
}

// Runtime ISA dispatch. Every element-wise loop is compiled twice: for the x86-64 baseline
// (SSE2) and for AVX2 (`target("avx2")`, which the OpenMP outlined body inherits), and the AVX2
// copy runs when the CPU has it. Only correctly rounded IEEE operations (+ − × ÷ √, conversions)
// occur and contraction is off (-ffp-contract=off: no fused multiply-add), so both copies give the
// same bits; the `kernelIsa` entry forces one (tests compare them).
#if defined(__x86_64__) || defined(__i386__)
#define CHAINOPT_X86 1
#endif

bool DetectAvx2() {
#ifdef CHAINOPT_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}
const bool kHasAvx2 = DetectAvx2();
bool use_avx2 = kHasAvx2;

// body(i) for i in [0, n): a static OpenMP partition (contiguous equal blocks) from g_parallel_min
// entries on, the calling thread below. Private copy: the body's captured pointers and constants
// are copied into each thread's own closure object, whose address does not escape, so that the
// compiler may keep them in registers; read through a reference to the caller's closure, every
// store through a captured float pointer might change a captured float constant, which forces a
// reload per entry and blocks vectorization.
template <typename Body>
void ForBaseline(int64_t n, const Body& body) {
#pragma omp parallel if (n >= g_parallel_min)
  {
    const Body local = body;  // each thread's own copy: see Private below
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i++) local(i);
  }
}

#ifdef CHAINOPT_X86
template <typename Body>
__attribute__((target("avx2"))) void ForAvx2(int64_t n, const Body& body) {
#pragma omp parallel if (n >= g_parallel_min)
  {
    const Body local = body;  // each thread's own copy: see Private below
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i++) local(i);
  }
}
#endif

template <typename Body>
inline void For(int64_t n, const Body& body) {
#ifdef CHAINOPT_X86
  if (use_avx2) return ForAvx2(n, body);
#endif
  ForBaseline(n, body);
}

// OR of body(i) over i in [0, n) (body returns 0 or 1), partitioned as For. An OR does not
// depend on the order of the partial results.
template <typename Body>
int AnyBaseline(int64_t n, const Body& body) {
  int any = 0;
#pragma omp parallel if (n >= g_parallel_min)
  {
    const Body local = body;
#pragma omp for schedule(static) reduction(| : any)
    for (int64_t i = 0; i < n; i++) any |= local(i);
  }
  return any;
}

#ifdef CHAINOPT_X86
template <typename Body>
__attribute__((target("avx2"))) int AnyAvx2(int64_t n, const Body& body) {
  int any = 0;
#pragma omp parallel if (n >= g_parallel_min)
  {
    const Body local = body;
#pragma omp for schedule(static) reduction(| : any)
    for (int64_t i = 0; i < n; i++) any |= local(i);
  }
  return any;
}
#endif

template <typename Body>
inline int Any(int64_t n, const Body& body) {
#ifdef CHAINOPT_X86
  if (use_avx2) return AnyAvx2(n, body);
#endif
  return AnyBaseline(n, body);
}

// The bodies below are always_inline lambdas so that they are compiled into (and vectorized with)
// each copy of the loop.
#define CHAINOPT_BODY(...) [=](int64_t i) __attribute__((always_inline)) { __VA_ARGS__ }

// Arithmetic of the adaptive optimizers. Float64 arrays: doubles throughout. Float32 arrays:
// float32 throughout (the hyper-parameters rounded to float32 once), as PyTorch and Optax update
// float32 parameters; each operation is one correctly rounded float32 operation, which the
// portable loops of src/optim/adaptive.ts reproduce with Math.fround, so both agree bit for bit.

// Adam / AMSGrad (Kingma & Ba, ICLR 2015, Alg. 1; AMSGrad in PyTorch's form), the loop of
// scaleByAdam in src/optim/adaptive.ts: m ← β₁m + c₁g, v ← β₂v + (c₂g)g, [v_max ← max(v_max, v)],
// u ← (m / bc₁) / (√v / √bc₂ + ε). The variants are compile-time (AMS) so that each loop has no
// branch and vectorizes; the arrays are distinct state buffers.
template <typename T, bool AMS>
void AdamLoop(int64_t n, T* __restrict u, T* __restrict m, T* __restrict v, T* __restrict vmax, double b1d, double c1d, double b2d,
              double c2d, double bc1d, double bc2sd, double epsd) {
  const T b1 = static_cast<T>(b1d), c1 = static_cast<T>(c1d), b2 = static_cast<T>(b2d), c2 = static_cast<T>(c2d);
  const T bc1 = static_cast<T>(bc1d), bc2s = static_cast<T>(bc2sd), eps = static_cast<T>(epsd);
  For(n, CHAINOPT_BODY({
    const T g = u[i];
    const T mi = b1 * m[i] + c1 * g;
    const T vi = b2 * v[i] + (c2 * g) * g;
    m[i] = mi;
    v[i] = vi;
    T d = vi;
    if (AMS) {
      const T old = vmax[i];
      d = !(vi <= old) ? vi : old;  // propagates NaN, like torch.maximum
      vmax[i] = d;
    }
    u[i] = (mi / bc1) / (std::sqrt(d) / bc2s + eps);
  }));
}

template <typename T>
void Adam(int64_t n, T* u, T* m, T* v, T* vmax, double b1, double c1, double b2, double c2, double bc1, double bc2s, double eps) {
  if (vmax) AdamLoop<T, true>(n, u, m, v, vmax, b1, c1, b2, c2, bc1, bc2s, eps);
  else AdamLoop<T, false>(n, u, m, v, nullptr, b1, c1, b2, c2, bc1, bc2s, eps);
}

// RMSprop (Tieleman & Hinton 2012, PyTorch form), scaleByRms: ν ← ρν + ((1−ρ)g)g, [μ ← ρμ + (1−ρ)g],
// u ← g / (√(ν [− μ·μ]) + ε).
template <typename T, bool CENTERED>
void RmsLoop(int64_t n, T* __restrict u, T* __restrict nu, T* __restrict mu, double rhod, double oned, double epsd) {
  const T rho = static_cast<T>(rhod), one = static_cast<T>(oned), eps = static_cast<T>(epsd);
  For(n, CHAINOPT_BODY({
    const T g = u[i];
    const T ni = rho * nu[i] + (one * g) * g;
    nu[i] = ni;
    T var = ni;
    if (CENTERED) {
      const T mi = rho * mu[i] + one * g;
      mu[i] = mi;
      var = ni - mi * mi;
    }
    u[i] = g / (std::sqrt(var) + eps);
  }));
}

template <typename T>
void Rms(int64_t n, T* u, T* nu, T* mu, double rho, double one, double eps) {
  if (mu) RmsLoop<T, true>(n, u, nu, mu, rho, one, eps);
  else RmsLoop<T, false>(n, u, nu, nullptr, rho, one, eps);
}

// AdaGrad (Duchi, Hazan & Singer 2011), scaleByRss: s ← s + g·g, u ← g / (√s + δ).
template <typename T>
void Rss(int64_t n, T* __restrict u, T* __restrict s, double epsd) {
  const T eps = static_cast<T>(epsd);
  For(n, CHAINOPT_BODY({
    const T g = u[i];
    const T si = s[i] + g * g;
    s[i] = si;
    u[i] = g / (std::sqrt(si) + eps);
  }));
}

// Heavy-ball momentum, PyTorch form (traceMomentum): v ← g on the first step, else v ← μv + (1−d)g
// with two roundings, as the portable scal-then-axpy of src/core/kernels.ts (v ← μv, then
// v ← v + (1−d)g), in doubles like those BLAS-style kernels (μ and 1−d are not rounded to the
// array's precision); u ← v, or u ← g + μv with Nesterov. Memory-bound: float32 arithmetic would
// not make it faster.
template <typename T, bool FIRST, bool NESTEROV>
void MomentumLoop(int64_t n, T* __restrict u, T* __restrict v, double mu, double keep) {
  For(n, CHAINOPT_BODY({
    const double g = u[i];
    const T vi = FIRST ? static_cast<T>(g) : static_cast<T>(static_cast<double>(static_cast<T>(mu * static_cast<double>(v[i]))) + keep * g);
    v[i] = vi;
    u[i] = NESTEROV ? static_cast<T>(g + mu * static_cast<double>(vi)) : vi;
  }));
}

template <typename T>
void Momentum(int64_t n, T* u, T* v, double mu, double keep, bool first, bool nesterov) {
  if (first) {
    if (nesterov) MomentumLoop<T, true, true>(n, u, v, mu, keep);
    else MomentumLoop<T, true, false>(n, u, v, mu, keep);
  } else {
    if (nesterov) MomentumLoop<T, false, true>(n, u, v, mu, keep);
    else MomentumLoop<T, false, false>(n, u, v, mu, keep);
  }
}

// Clipping by value (clipByValue in src/optim/clipping.ts): u ← c where u > c, −c where u < −c,
// else u (NaN stays NaN); compared in doubles, c rounded to the array's precision when stored, as
// in the portable loop.
template <typename T>
void ClipValue(int64_t n, T* u, double c) {
  For(n, CHAINOPT_BODY({
    const T x = u[i];  // kept as is (NaN included) within [−c, c]
    const double xd = x;
    u[i] = xd > c ? static_cast<T>(c) : xd < -c ? static_cast<T>(-c) : x;
  }));
}

// Iterate averaging (src/optim/averaging.ts), in doubles with one rounding per store like the
// portable loops. Polyak's incremental mean: a ← a + (w − a)·(1/n); exponential moving average:
// a ← β·a + (1 − β)·w (b = β, c = 1 − β).
template <typename T>
void PolyakUpdate(int64_t n, T* __restrict a, const T* __restrict w, double inv) {
  For(n, CHAINOPT_BODY({
    const double ai = a[i];
    a[i] = static_cast<T>(ai + (static_cast<double>(w[i]) - ai) * inv);
  }));
}

template <typename T>
void EmaUpdate(int64_t n, T* __restrict a, const T* __restrict w, double b, double c) {
  For(n, CHAINOPT_BODY({ a[i] = static_cast<T>(b * static_cast<double>(a[i]) + c * static_cast<double>(w[i])); }));
}

// Linear combination across precisions (combineInto in src/core/kernels.ts): out ← α·x + β·y,
// each entry formed in double from x[i] and y[i] (float32 widens exactly) and rounded once to
// out's precision, as the portable loop `out[i] = alpha * x[i] + beta * y[i]`. For the mixed
// float32/float64 vectors of the second-order steps (a float64 gradient from a float32 one, a
// float64 direction applied to float32 parameters). x, y and out may be the same array: entry i
// reads index i before writing it, so no __restrict.
template <typename TX, typename TY, typename TO>
void CombineLoop(int64_t n, double alpha, const TX* x, double beta, const TY* y, TO* out) {
  For(n, CHAINOPT_BODY({ out[i] = static_cast<TO>(alpha * static_cast<double>(x[i]) + beta * static_cast<double>(y[i])); }));
}

template <typename TX, typename TY>
void CombineTo(int64_t n, double alpha, const TX* x, double beta, const TY* y, const Arr& out) {
  if (out.type == napi_float32_array) CombineLoop(n, alpha, x, beta, y, static_cast<float*>(out.data));
  else CombineLoop(n, alpha, x, beta, y, static_cast<double*>(out.data));
}

template <typename TX>
void CombineY(int64_t n, double alpha, const TX* x, double beta, const Arr& y, const Arr& out) {
  if (y.type == napi_float32_array) CombineTo(n, alpha, x, beta, static_cast<const float*>(y.data), out);
  else CombineTo(n, alpha, x, beta, static_cast<const double*>(y.data), out);
}

// ReLU y = x > 0 ? x : 0 (NaN and −0 give +0, as the TypeScript kernel).
template <typename T>
void ReluForward(int64_t n, const T* x, T* y) {
  For(n, CHAINOPT_BODY({ y[i] = x[i] > 0 ? x[i] : T(0); }));
}

// ReLU's derivative applied to v: out = x > 0 ? v : 0 (VJP and JVP alike, the Jacobian is diagonal).
template <typename T>
void ReluBackward(int64_t n, const T* x, const T* v, T* out) {
  For(n, CHAINOPT_BODY({
    const T xi = x[i];
    const T vi = v[i];  // loaded unconditionally, so that the select vectorizes
    out[i] = xi > 0 ? vi : T(0);
  }));
}

// 1 when x is ±∞ or NaN: all exponent bits set (IEEE 754 binary32/binary64), an integer test
// that vectorizes (a floating-point test would need -ffast-math to vectorize its reduction).
inline int NonFinite(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return (b & 0x7f800000u) == 0x7f800000u;
}
inline int NonFinite(double x) {
  uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return (b & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
}

// w ← w + u (Optax's apply_updates; one rounding, the bits of BLAS axpy with α = 1 and of the
// portable loop), returning 1 when some entry of the new w is not finite: the trainer's check of
// the parameters rides on the pass that writes them instead of reading them again.
template <typename T>
int AddNonFinite(int64_t n, T* __restrict w, const T* __restrict u) {
  return Any(n, [=](int64_t i) __attribute__((always_inline)) {
    const T wi = w[i] + u[i];
    w[i] = wi;
    return NonFinite(wi);
  });
}

// A whole SGD step in one pass, for the chain [traceMomentum?, scaleByLearningRate] followed by
// the trainer's apply-and-check: d ← the momentum kernel's update of v from g (MomentumLoop, same
// roundings) or g without momentum; t ← α·d as BLAS scal computes it (α rounded to the array's
// precision, one rounding of the product; α = 0 writes +0, as OpenBLAS's scal does); w ← w + t.
// Returns 1 when some entry of the new w is not finite. Same bits as the three passes it replaces
// (momentum kernel, scal, addFinite); g is left unchanged.
template <typename T, bool MOM, bool FIRST, bool NESTEROV, bool ZERO>
int SgdApplyLoop(int64_t n, T* __restrict w, const T* __restrict g, T* __restrict v, double mu, double keep, T alpha) {
  return Any(n, [=](int64_t i) __attribute__((always_inline)) {
    const double gi = g[i];
    T d;
    if (MOM) {
      const T vi = FIRST ? static_cast<T>(gi) : static_cast<T>(static_cast<double>(static_cast<T>(mu * static_cast<double>(v[i]))) + keep * gi);
      v[i] = vi;
      d = NESTEROV ? static_cast<T>(gi + mu * static_cast<double>(vi)) : vi;
    } else {
      d = g[i];
    }
    const T t = ZERO ? T(0) : alpha * d;
    const T wi = w[i] + t;
    w[i] = wi;
    return NonFinite(wi);
  });
}

template <typename T, bool ZERO>
int SgdApplyWith(int64_t n, T* w, const T* g, T* v, double mu, double keep, bool first, bool nesterov, T a) {
  if (!v) return SgdApplyLoop<T, false, false, false, ZERO>(n, w, g, nullptr, mu, keep, a);
  if (first) {
    return nesterov ? SgdApplyLoop<T, true, true, true, ZERO>(n, w, g, v, mu, keep, a) : SgdApplyLoop<T, true, true, false, ZERO>(n, w, g, v, mu, keep, a);
  }
  return nesterov ? SgdApplyLoop<T, true, false, true, ZERO>(n, w, g, v, mu, keep, a) : SgdApplyLoop<T, true, false, false, ZERO>(n, w, g, v, mu, keep, a);
}

template <typename T>
int SgdApply(int64_t n, T* w, const T* g, T* v, double mu, double keep, bool first, bool nesterov, double alpha) {
  return alpha == 0 ? SgdApplyWith<T, true>(n, w, g, v, mu, keep, first, nesterov, T(0))
                    : SgdApplyWith<T, false>(n, w, g, v, mu, keep, first, nesterov, static_cast<T>(alpha));
}

// 1 when some entry of x is not finite.
template <typename T>
int AnyNonFinite(int64_t n, const T* x) {
  return Any(n, [=](int64_t i) __attribute__((always_inline)) { return NonFinite(x[i]); });
}

// adamUpdate(n, u, m, v, vmax | null, b1, c1, b2, c2, bc1, bc2Sqrt, eps)
napi_value AdamEntry(napi_env env, napi_callback_info info) {
  const char* fn = "adamUpdate";
  napi_value a[12];
  if (!Args(env, info, fn, 12, "(n, u, m, v, vmax, b1, c1, b2, c2, bc1, bc2Sqrt, eps)", a)) return nullptr;
  int64_t n;
  Arr u, m, v, vm;
  double b1, c1, b2, c2, bc1, bc2s, eps;
  if (!GetN(env, a[0], fn, &n) || !GetFloat(env, a[1], fn, "u", false, &u) || !GetFloat(env, a[2], fn, "m", false, &m) ||
      !GetFloat(env, a[3], fn, "v", false, &v) || !GetFloat(env, a[4], fn, "vmax", true, &vm) || !GetNum(env, a[5], fn, "b1", &b1) ||
      !GetNum(env, a[6], fn, "c1", &c1) || !GetNum(env, a[7], fn, "b2", &b2) || !GetNum(env, a[8], fn, "c2", &c2) ||
      !GetNum(env, a[9], fn, "bc1", &bc1) || !GetNum(env, a[10], fn, "bc2Sqrt", &bc2s) || !GetNum(env, a[11], fn, "eps", &eps) ||
      !Same(env, fn, n, {{"u", &u}, {"m", &m}, {"v", &v}, {"vmax", &vm}})) {
    return nullptr;
  }
  if (u.type == napi_float32_array) Adam<float>(n, P<float>(u), P<float>(m), P<float>(v), P<float>(vm), b1, c1, b2, c2, bc1, bc2s, eps);
  else Adam<double>(n, P<double>(u), P<double>(m), P<double>(v), P<double>(vm), b1, c1, b2, c2, bc1, bc2s, eps);
  return nullptr;
}

// rmsUpdate(n, u, nu, mu | null, rho, one, eps)
napi_value RmsEntry(napi_env env, napi_callback_info info) {
  const char* fn = "rmsUpdate";
  napi_value a[7];
  if (!Args(env, info, fn, 7, "(n, u, nu, mu, rho, one, eps)", a)) return nullptr;
  int64_t n;
  Arr u, nu, mu;
  double rho, one, eps;
  if (!GetN(env, a[0], fn, &n) || !GetFloat(env, a[1], fn, "u", false, &u) || !GetFloat(env, a[2], fn, "nu", false, &nu) ||
      !GetFloat(env, a[3], fn, "mu", true, &mu) || !GetNum(env, a[4], fn, "rho", &rho) || !GetNum(env, a[5], fn, "one", &one) ||
      !GetNum(env, a[6], fn, "eps", &eps) || !Same(env, fn, n, {{"u", &u}, {"nu", &nu}, {"mu", &mu}})) {
    return nullptr;
  }
  if (u.type == napi_float32_array) Rms<float>(n, P<float>(u), P<float>(nu), P<float>(mu), rho, one, eps);
  else Rms<double>(n, P<double>(u), P<double>(nu), P<double>(mu), rho, one, eps);
  return nullptr;
}

// rssUpdate(n, u, s, eps)
napi_value RssEntry(napi_env env, napi_callback_info info) {
  const char* fn = "rssUpdate";
  napi_value a[4];
  if (!Args(env, info, fn, 4, "(n, u, s, eps)", a)) return nullptr;
  int64_t n;
  Arr u, s;
  double eps;
  if (!GetN(env, a[0], fn, &n) || !GetFloat(env, a[1], fn, "u", false, &u) || !GetFloat(env, a[2], fn, "s", false, &s) ||
      !GetNum(env, a[3], fn, "eps", &eps) || !Same(env, fn, n, {{"u", &u}, {"s", &s}})) {
    return nullptr;
  }
  if (u.type == napi_float32_array) Rss<float>(n, P<float>(u), P<float>(s), eps);
  else Rss<double>(n, P<double>(u), P<double>(s), eps);
  return nullptr;
}

// momentumUpdate(n, u, v, mu, keep, first, nesterov)
napi_value MomentumEntry(napi_env env, napi_callback_info info) {
  const char* fn = "momentumUpdate";
  napi_value a[7];
  if (!Args(env, info, fn, 7, "(n, u, v, mu, keep, first, nesterov)", a)) return nullptr;
  int64_t n;
  Arr u, v;
  double mu, keep;
  bool first, nesterov;
  if (!GetN(env, a[0], fn, &n) || !GetFloat(env, a[1], fn, "u", false, &u) || !GetFloat(env, a[2], fn, "v", false, &v) ||
      !GetNum(env, a[3], fn, "mu", &mu) || !GetNum(env, a[4], fn, "keep", &keep) || !GetFlag(env, a[5], fn, "first", &first) ||
      !GetFlag(env, a[6], fn, "nesterov", &nesterov) || !Same(env, fn, n, {{"u", &u}, {"v", &v}})) {
    return nullptr;
  }
  if (u.type == napi_float32_array) Momentum<float>(n, P<float>(u), P<float>(v), mu, keep, first, nesterov);
  else Momentum<double>(n, P<double>(u), P<double>(v), mu, keep, first, nesterov);
  return nullptr;
}

napi_value Bool(napi_env env, bool b) {
  napi_value out;
  napi_get_boolean(env, b, &out);
  return out;
}

// addFinite(n, w, u) → whether every entry of w ← w + u is finite.
napi_value AddFiniteEntry(napi_env env, napi_callback_info info) {
  const char* fn = "addFinite";
  napi_value a[3];
  if (!Args(env, info, fn, 3, "(n, w, u)", a)) return nullptr;
  int64_t n;
  Arr w, u;
  if (!GetN(env, a[0], fn, &n) || !GetFloat(env, a[1], fn, "w", false, &w) || !GetFloat(env, a[2], fn, "u", false, &u) ||
      !Same(env, fn, n, {{"w", &w}, {"u", &u}})) {
    return nullptr;
  }
  const int bad = w.type == napi_float32_array ? AddNonFinite<float>(n, P<float>(w), P<float>(u)) : AddNonFinite<double>(n, P<double>(w), P<double>(u));
  return Bool(env, bad == 0);
}

// sgdApply(n, w, g, v | null, mu, keep, first, nesterov, alpha) → whether every entry of the new w is finite.
napi_value SgdApplyEntry(napi_env env, napi_callback_info info) {
  const char* fn = "sgdApply";
  napi_value a[9];
  if (!Args(env, info, fn, 9, "(n, w, g, v, mu, keep, first, nesterov, alpha)", a)) return nullptr;
  int64_t n;
  Arr w, g, v;
  double mu, keep, alpha;
  bool first, nesterov;
  if (!GetN(env, a[0], fn, &n) || !GetFloat(env, a[1], fn, "w", false, &w) || !GetFloat(env, a[2], fn, "g", false, &g) ||
      !GetFloat(env, a[3], fn, "v", true, &v) || !GetNum(env, a[4], fn, "mu", &mu) || !GetNum(env, a[5], fn, "keep", &keep) ||
      !GetFlag(env, a[6], fn, "first", &first) || !GetFlag(env, a[7], fn, "nesterov", &nesterov) || !GetNum(env, a[8], fn, "alpha", &alpha) ||
      !Same(env, fn, n, {{"w", &w}, {"g", &g}, {"v", &v}})) {
    return nullptr;
  }
  const int bad = w.type == napi_float32_array ? SgdApply<float>(n, P<float>(w), P<float>(g), P<float>(v), mu, keep, first, nesterov, alpha)
                                               : SgdApply<double>(n, P<double>(w), P<double>(g), P<double>(v), mu, keep, first, nesterov, alpha);
  return Bool(env, bad == 0);
}

// allFinite(n, x) → whether every entry of x is finite.
napi_value AllFiniteEntry(napi_env env, napi_callback_info info) {
  const char* fn = "allFinite";
  napi_value a[2];
  if (!Args(env, info, fn, 2, "(n, x)", a)) return nullptr;
  int64_t n;
  Arr x;
  if (!GetN(env, a[0], fn, &n) || !GetFloat(env, a[1], fn, "x", false, &x) || !Same(env, fn, n, {{"x", &x}})) return nullptr;
  const int bad = x.type == napi_float32_array ? AnyNonFinite<float>(n, P<float>(x)) : AnyNonFinite<double>(n, P<double>(x));
  return Bool(env, bad == 0);
}

// clipValue(n, u, c)
napi_value ClipValueEntry(napi_env env, napi_callback_info info) {
  const char* fn = "clipValue";
  napi_value a[3];
  if (!Args(env, info, fn, 3, "(n, u, c)", a)) return nullptr;
  int64_t n;
  Arr u;
  double c;
  if (!GetN(env, a[0], fn, &n) || !GetFloat(env, a[1], fn, "u", false, &u) || !GetNum(env, a[2], fn, "c", &c) || !Same(env, fn, n, {{"u", &u}}))
    return nullptr;
  if (u.type == napi_float32_array) ClipValue<float>(n, P<float>(u), c);
  else ClipValue<double>(n, P<double>(u), c);
  return nullptr;
}

// averageUpdate(n, a, w, kind, p, q): kind 0 Polyak (p = 1/n), 1 EMA (p = β, q = 1 − β).
napi_value AverageEntry(napi_env env, napi_callback_info info) {
  const char* fn = "averageUpdate";
  napi_value a[6];
  if (!Args(env, info, fn, 6, "(n, a, w, kind, p, q)", a)) return nullptr;
  int64_t n;
  Arr avg, w;
  double kind, p, q;
  if (!GetN(env, a[0], fn, &n) || !GetFloat(env, a[1], fn, "a", false, &avg) || !GetFloat(env, a[2], fn, "w", false, &w) ||
      !GetNum(env, a[3], fn, "kind", &kind) || !GetNum(env, a[4], fn, "p", &p) || !GetNum(env, a[5], fn, "q", &q) ||
      !Same(env, fn, n, {{"a", &avg}, {"w", &w}})) {
    return nullptr;
  }
  if (kind != 0 && kind != 1) return Fail(env, fn, "argument 'kind' must be 0 (Polyak) or 1 (EMA)"), nullptr;
  const bool f32 = avg.type == napi_float32_array;
  if (kind == 0) {
    if (f32) PolyakUpdate<float>(n, P<float>(avg), P<float>(w), p);
    else PolyakUpdate<double>(n, P<double>(avg), P<double>(w), p);
  } else if (f32) EmaUpdate<float>(n, P<float>(avg), P<float>(w), p, q);
  else EmaUpdate<double>(n, P<double>(avg), P<double>(w), p, q);
  return nullptr;
}

// combine(n, alpha, x, beta, y, out): out ← α·x + β·y, the arrays of any precision each.
napi_value CombineEntry(napi_env env, napi_callback_info info) {
  const char* fn = "combine";
  napi_value a[6];
  if (!Args(env, info, fn, 6, "(n, alpha, x, beta, y, out)", a)) return nullptr;
  int64_t n;
  Arr x, y, out;
  double alpha, beta;
  // Each array on its own (precisions may differ): Same checks its length against n.
  if (!GetN(env, a[0], fn, &n) || !GetNum(env, a[1], fn, "alpha", &alpha) || !GetFloat(env, a[2], fn, "x", false, &x) ||
      !GetNum(env, a[3], fn, "beta", &beta) || !GetFloat(env, a[4], fn, "y", false, &y) || !GetFloat(env, a[5], fn, "out", false, &out) ||
      !Same(env, fn, n, {{"x", &x}}) || !Same(env, fn, n, {{"y", &y}}) || !Same(env, fn, n, {{"out", &out}})) {
    return nullptr;
  }
  if (x.type == napi_float32_array) CombineY(n, alpha, static_cast<const float*>(x.data), beta, y, out);
  else CombineY(n, alpha, static_cast<const double*>(x.data), beta, y, out);
  return nullptr;
}

// reluForward(n, x, y)
napi_value ReluForwardEntry(napi_env env, napi_callback_info info) {
  const char* fn = "reluForward";
  napi_value a[3];
  if (!Args(env, info, fn, 3, "(n, x, y)", a)) return nullptr;
  int64_t n;
  Arr x, y;
  if (!GetN(env, a[0], fn, &n) || !GetFloat(env, a[1], fn, "x", false, &x) || !GetFloat(env, a[2], fn, "y", false, &y) ||
      !Same(env, fn, n, {{"x", &x}, {"y", &y}})) {
    return nullptr;
  }
  if (x.type == napi_float32_array) ReluForward<float>(n, P<float>(x), P<float>(y));
  else ReluForward<double>(n, P<double>(x), P<double>(y));
  return nullptr;
}

// reluBackward(n, x, v, out)
napi_value ReluBackwardEntry(napi_env env, napi_callback_info info) {
  const char* fn = "reluBackward";
  napi_value a[4];
  if (!Args(env, info, fn, 4, "(n, x, v, out)", a)) return nullptr;
  int64_t n;
  Arr x, v, out;
  if (!GetN(env, a[0], fn, &n) || !GetFloat(env, a[1], fn, "x", false, &x) || !GetFloat(env, a[2], fn, "v", false, &v) ||
      !GetFloat(env, a[3], fn, "out", false, &out) || !Same(env, fn, n, {{"x", &x}, {"v", &v}, {"out", &out}})) {
    return nullptr;
  }
  if (x.type == napi_float32_array) ReluBackward<float>(n, P<float>(x), P<float>(v), P<float>(out));
  else ReluBackward<double>(n, P<double>(x), P<double>(v), P<double>(out));
  return nullptr;
}

// Softmax cross-entropy (logistic loss) with integer labels, the loop of LogisticLoss.evaluate in
// src/objectives/logistic.ts, row by row: m = max_j z_j, lse = m + log Σ_j e^{z_j − m},
// ℓ_i = lse − z_{y_i}, and when grad is given grad_ij = e^{z_ij − lse}/n, grad_{i,y_i} −= 1/n.
// Rows are independent (parallel over samples); the per-row losses are then summed in row order
// on the calling thread, so the result does not depend on the thread count. Not bit-identical to
// the portable loop: the C library's exp/log and JavaScript's Math.exp/log (V8: fdlibm) differ in
// the last bit for some arguments (docs/performance.md).
template <typename T>
double Logistic(int64_t n, int64_t k, const T* z, const int32_t* labels, T* grad) {
  std::vector<double> rows(static_cast<size_t>(n));
#pragma omp parallel for schedule(static) if (n * k >= g_parallel_min)
  for (int64_t i = 0; i < n; i++) {
    const T* zi = z + i * k;
    double m = zi[0];
    for (int64_t j = 1; j < k; j++)
      if (zi[j] > m) m = zi[j];
    double s = 0;
    for (int64_t j = 0; j < k; j++) s += std::exp(static_cast<double>(zi[j]) - m);
    const double lse = m + std::log(s);
    const int32_t y = labels[i];
    rows[i] = lse - static_cast<double>(zi[y]);
    if (grad) {
      T* gi = grad + i * k;
      for (int64_t j = 0; j < k; j++) gi[j] = static_cast<T>(std::exp(static_cast<double>(zi[j]) - lse) / static_cast<double>(n));
      gi[y] = static_cast<T>(static_cast<double>(gi[y]) - 1 / static_cast<double>(n));
    }
  }
  double total = 0;
  for (int64_t i = 0; i < n; i++) total += rows[i];
  return total / static_cast<double>(n);
}

// logisticLoss(n, k, output, labels, grad | null) → the mean loss; labels an Int32Array of n
// entries in [0, k).
napi_value LogisticEntry(napi_env env, napi_callback_info info) {
  const char* fn = "logisticLoss";
  napi_value a[5];
  if (!Args(env, info, fn, 5, "(n, k, output, labels, grad)", a)) return nullptr;
  int64_t n, k;
  Arr z, grad;
  if (!GetN(env, a[0], fn, &n) || !GetN(env, a[1], fn, &k) || !GetFloat(env, a[2], fn, "output", false, &z) ||
      !GetFloat(env, a[4], fn, "grad", true, &grad) || !Same(env, fn, n * k, {{"output", &z}, {"grad", &grad}})) {
    return nullptr;
  }
  bool is_typed = false;
  napi_typedarray_type type;
  size_t nl = 0;
  void* data = nullptr;
  if (napi_is_typedarray(env, a[3], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, a[3], &type, &nl, &data, nullptr, nullptr) != napi_ok || type != napi_int32_array) {
    return Fail(env, fn, "argument 'labels' must be an Int32Array"), nullptr;
  }
  if (static_cast<int64_t>(nl) < n) return Fail(env, fn, "argument 'labels' has fewer than n entries"), nullptr;
  if (k < 1) return Fail(env, fn, "argument 'k' must be positive"), nullptr;
  const int32_t* labels = static_cast<const int32_t*>(data);
  for (int64_t i = 0; i < n; i++)
    if (labels[i] < 0 || labels[i] >= k) return Fail(env, fn, "label " + std::to_string(labels[i]) + " of sample " + std::to_string(i) + " is outside [0, k)"), nullptr;
  const double loss = z.type == napi_float32_array ? Logistic<float>(n, k, P<float>(z), labels, P<float>(grad))
                                                   : Logistic<double>(n, k, P<double>(z), labels, P<double>(grad));
  napi_value out;
  napi_create_double(env, loss, &out);
  return out;
}

// kernelIsa([name]) → the instruction set the element-wise loops use ("avx2" or "baseline");
// with a name, switches to it first ("avx2" only where the CPU has it). For tests and benchmarks.
napi_value KernelIsaEntry(napi_env env, napi_callback_info info) {
  const char* fn = "kernelIsa";
  size_t argc = 1;
  napi_value a[1];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  napi_valuetype vt = napi_undefined;
  if (argc >= 1) napi_typeof(env, a[0], &vt);
  if (vt != napi_undefined) {
    char name[16] = {0};
    size_t len = 0;
    if (vt != napi_string || napi_get_value_string_utf8(env, a[0], name, sizeof(name), &len) != napi_ok)
      return Fail(env, fn, "argument 'name' must be \"avx2\" or \"baseline\""), nullptr;
    const std::string want(name, len);
    if (want == "baseline") use_avx2 = false;
    else if (want == "avx2") {
      if (!kHasAvx2) {
        napi_throw_error(env, "ERR_CHAINOPT_ISA", "kernelIsa: this CPU has no AVX2");
        return nullptr;
      }
      use_avx2 = true;
    } else return Fail(env, fn, "argument 'name' must be \"avx2\" or \"baseline\", got \"" + want + "\""), nullptr;
  }
  napi_value out;
  napi_create_string_utf8(env, use_avx2 ? "avx2" : "baseline", NAPI_AUTO_LENGTH, &out);
  return out;
}

napi_value OmpThreadsEntry(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_int32(env, GetOmpThreads(), &out);
  return out;
}

}  // namespace

double GetElementwiseParallelMin() { return static_cast<double>(g_parallel_min); }
void SetElementwiseParallelMin(double n) { g_parallel_min = static_cast<int64_t>(n); }

void SetOmpThreads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}

int GetOmpThreads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void RegisterKernels(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"adamUpdate", nullptr, AdamEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rmsUpdate", nullptr, RmsEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rssUpdate", nullptr, RssEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"momentumUpdate", nullptr, MomentumEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"clipValue", nullptr, ClipValueEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"averageUpdate", nullptr, AverageEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"combine", nullptr, CombineEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"addFinite", nullptr, AddFiniteEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sgdApply", nullptr, SgdApplyEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"allFinite", nullptr, AllFiniteEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"reluForward", nullptr, ReluForwardEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"reluBackward", nullptr, ReluBackwardEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"logisticLoss", nullptr, LogisticEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"kernelIsa", nullptr, KernelIsaEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"getOmpThreads", nullptr, OmpThreadsEntry, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
