// chainopt_blas: a thin N-API binding over OpenBLAS (CBLAS + the Fortran LAPACK it ships).
//
// Design notes
// - Plain C N-API (node_api.h, ABI-stable across Node versions): no wrapper library, so a call
//   costs one napi_get_cb_info, a few napi_get_value_* and one napi_get_typedarray_info per array.
// - No copies: napi_get_typedarray_info returns the data pointer already advanced by the view's
//   byteOffset, so subarray views are passed to BLAS as they are.
// - Every size is validated before BLAS sees it (OpenBLAS would print an xerbla message and
//   return, or read out of bounds); errors name the function and the argument.
// - LAPACK: Debian's OpenBLAS has no LAPACKE, so we call the Fortran routines (dpotrf_, dsyevd_,
//   dgetrf_) on the column-major view of the row-major buffer, which is the transpose, and pick
//   the routine variant that makes the transpose harmless (derivations at each function).
//   Triangular solves use CBLAS dtrsm in row-major directly, so right-hand sides are never copied.

#define NAPI_VERSION 8
#include <node_api.h>

#include <cblas.h>

#include "chainopt_dnn.h"

#if defined(__linux__) || defined(__APPLE__)
#include <dlfcn.h>
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#ifndef OPENBLAS_VERSION
#error "chainopt_blas needs OpenBLAS's cblas.h (install libopenblas-dev)"
#endif

// Fortran LAPACK routines exported by libopenblas (LP64: blasint = int). The trailing size_t
// arguments are the hidden string lengths gfortran passes for CHARACTER arguments.
extern "C" {
void dpotrf_(const char* uplo, const blasint* n, double* a, const blasint* lda, blasint* info, size_t uplo_len);
void dsyevd_(const char* jobz, const char* uplo, const blasint* n, double* a, const blasint* lda, double* w, double* work,
             const blasint* lwork, blasint* iwork, const blasint* liwork, blasint* info, size_t jobz_len, size_t uplo_len);
void dgetrf_(const blasint* m, const blasint* n, double* a, const blasint* lda, blasint* ipiv, blasint* info);
void spotrf_(const char* uplo, const blasint* n, float* a, const blasint* lda, blasint* info, size_t uplo_len);
}

namespace {

// Version of the JS-facing interface of this addon; the loader checks it.
constexpr int kAbi = 1;

bool ThrowType(napi_env env, const char* fn, const std::string& message) {
  const std::string m = std::string(fn) + ": " + message;
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", m.c_str());
  return false;
}

bool ThrowRange(napi_env env, const char* fn, const std::string& message) {
  const std::string m = std::string(fn) + ": " + message;
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", m.c_str());
  return false;
}

bool Args(napi_env env, napi_callback_info info, const char* fn, size_t expected, const char* signature, napi_value* argv) {
  size_t argc = expected;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return false;
  if (argc < expected) {
    return ThrowType(env, fn, "expected " + std::to_string(expected) + " arguments " + signature + ", got " + std::to_string(argc));
  }
  return true;
}

bool GetBool(napi_env env, napi_value v, const char* fn, const char* name, bool* out) {
  if (napi_get_value_bool(env, v, out) != napi_ok) return ThrowType(env, fn, std::string("argument '") + name + "' must be a boolean");
  return true;
}

bool GetNumber(napi_env env, napi_value v, const char* fn, const char* name, double* out) {
  if (napi_get_value_double(env, v, out) != napi_ok) return ThrowType(env, fn, std::string("argument '") + name + "' must be a number");
  return true;
}

// A dimension or leading dimension: an integer in [0, 2^31 − 1].
bool GetDim(napi_env env, napi_value v, const char* fn, const char* name, int64_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return ThrowType(env, fn, std::string("argument '") + name + "' must be a number");
  if (!(d >= 0 && d <= 2147483647.0) || d != std::floor(d)) {
    return ThrowRange(env, fn, std::string("argument '") + name + "' must be an integer in [0, 2^31-1], got " + std::to_string(d));
  }
  *out = static_cast<int64_t>(d);
  return true;
}

template <typename T>
struct ArrayKind;
template <>
struct ArrayKind<float> {
  static constexpr napi_typedarray_type type = napi_float32_array;
  static constexpr const char* name = "Float32Array";
};
template <>
struct ArrayKind<double> {
  static constexpr napi_typedarray_type type = napi_float64_array;
  static constexpr const char* name = "Float64Array";
};

// The data pointer (byteOffset applied) and element count of a typed-array view.
template <typename T>
bool GetArray(napi_env env, napi_value v, const char* fn, const char* name, T** data, int64_t* length) {
  bool is_typed = false;
  napi_typedarray_type type;
  size_t len = 0;
  void* ptr = nullptr;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, &len, &ptr, nullptr, nullptr) != napi_ok || type != ArrayKind<T>::type) {
    return ThrowType(env, fn, std::string("argument '") + name + "' must be a " + ArrayKind<T>::name);
  }
  *data = static_cast<T*>(ptr);
  *length = static_cast<int64_t>(len);
  return true;
}

// Elements a row-major rows×cols matrix with row stride ld spans.
int64_t Span(int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; }

bool CheckMatrix(napi_env env, const char* fn, const char* name, const char* ldName, int64_t length, int64_t rows, int64_t cols,
                 int64_t ld, const char* colsName) {
  const int64_t minLd = cols > 1 ? cols : 1;
  if (ld < minLd) {
    return ThrowRange(env, fn,
                      std::string("argument '") + ldName + "' = " + std::to_string(ld) + " must be >= max(1, " + colsName +
                          ") = " + std::to_string(minLd));
  }
  const int64_t need = Span(rows, cols, ld);
  if (length < need) {
    return ThrowRange(env, fn,
                      std::string("argument '") + name + "' has " + std::to_string(length) + " elements, needs at least " +
                          std::to_string(need) + " for a " + std::to_string(rows) + "x" + std::to_string(cols) +
                          " matrix with row stride " + ldName + " = " + std::to_string(ld));
  }
  return true;
}

// Products below this many multiply-adds (m·n·k) run on one thread. OpenBLAS 0.3.21 splits any
// GEMM above a much smaller threshold across all its threads; for the per-sample products of a
// convolution (e.g. 64×256×288 ≈ 4.7M) the fork/join and the idle spinning of the second thread
// cost more than the split gains: the ConvNet preset's training step measured 162 ms at 2 threads
// against 116 ms at 1. Large products (the MLP's 128×784×512 ≈ 51M) keep every thread.
double g_serial_gemm_work = 8.0e6;  // settable by serialThresholds (bench/thresholds.ts)

// openblas_get_parallel(): 0 sequential, 1 pthreads, 2 OpenMP build (read once at load).
int g_parallel = -1;
int Parallel() {
  if (g_parallel < 0) g_parallel = openblas_get_parallel();
  return g_parallel;
}

// Sets OpenBLAS's and OpenMP's thread counts to n. In OpenBLAS's OpenMP build the two are one pool:
// OpenBLAS reads omp_get_max_threads() at each call (and some versions set it in
// openblas_set_num_threads), so both are always set together (docs/performance.md).
void SetBothThreads(int n) {
  openblas_set_num_threads(n);
  SetOmpThreads(n);
}

// Runs f with OpenBLAS on one thread, then restores `threads` (both counts: in the OpenMP build,
// openblas_set_num_threads(1) may have set OpenMP's count too). With one thread OpenBLAS runs
// serially on the calling thread whichever build it is (its num_cpu_avail returns 1 at once).
template <typename F>
void Serially(int threads, F f) {
  openblas_set_num_threads(1);
  f();
  if (Parallel() == 2) SetBothThreads(threads);
  else openblas_set_num_threads(threads);
}

// Runs f with OpenBLAS limited to one thread when the product is small (see g_serial_gemm_work).
template <typename F>
void WithThreadsFor(blasint m, blasint n, blasint k, F f) {
  const int threads = openblas_get_num_threads();
  if (threads > 1 && static_cast<double>(m) * n * k < g_serial_gemm_work) Serially(threads, f);
  else f();
}

// Level-1/2 BLAS (memory-bound: axpy, scal, dot, gemv, ger) on fewer than this many entries runs
// on the calling thread, in both builds. OpenBLAS splits such calls over ~10⁴ entries; for the
// vectors of a training step (a ConvNet's 6·10⁴ parameters) waking the pool costs more than the
// split gains, and in the pthreads build that pool's workers then idle through the next oneDNN or
// element-wise region of the other pool (docs/performance.md). Larger vectors (the MLP
// 784-512-512-10's 6.7·10⁵ parameters, 2.7 MB in float32) keep every thread.
double g_serial_level12 = 524288.0;  // 2^19 (measured: bench/thresholds.ts); settable by serialThresholds

template <typename F>
void Level12(double entries, F f) {
  const int threads = openblas_get_num_threads();
  if (threads > 1 && entries < g_serial_level12) Serially(threads, f);
  else f();
}

void Gemm(float alpha, float beta, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k, const float* a, blasint lda,
          const float* b, blasint ldb, float* c, blasint ldc) {
  WithThreadsFor(m, n, k, [&] { cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); });
}
void Gemm(double alpha, double beta, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k, const double* a,
          blasint lda, const double* b, blasint ldb, double* c, blasint ldc) {
  WithThreadsFor(m, n, k, [&] { cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); });
}

// gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
// C ← α·op(A)·op(B) + β·C, row-major; C m×n, op(A) m×k, op(B) k×n (stored A is k×m when transA).
template <typename T>
napi_value GemmEntry(napi_env env, napi_callback_info info) {
  const char* fn = ArrayKind<T>::type == napi_float32_array ? "sgemm" : "dgemm";
  napi_value argv[13];
  if (!Args(env, info, fn, 13, "(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)", argv)) return nullptr;
  bool transA, transB;
  int64_t m, n, k, lda, ldb, ldc, la, lb, lc;
  double alpha, beta;
  T *a, *b, *c;
  if (!GetBool(env, argv[0], fn, "transA", &transA) || !GetBool(env, argv[1], fn, "transB", &transB) ||
      !GetDim(env, argv[2], fn, "m", &m) || !GetDim(env, argv[3], fn, "n", &n) || !GetDim(env, argv[4], fn, "k", &k) ||
      !GetNumber(env, argv[5], fn, "alpha", &alpha) || !GetArray<T>(env, argv[6], fn, "a", &a, &la) ||
      !GetDim(env, argv[7], fn, "lda", &lda) || !GetArray<T>(env, argv[8], fn, "b", &b, &lb) || !GetDim(env, argv[9], fn, "ldb", &ldb) ||
      !GetNumber(env, argv[10], fn, "beta", &beta) || !GetArray<T>(env, argv[11], fn, "c", &c, &lc) ||
      !GetDim(env, argv[12], fn, "ldc", &ldc)) {
    return nullptr;
  }
  // Stored shapes: A is m×k (k×m if transposed), B is k×n (n×k if transposed), C is m×n.
  if (!CheckMatrix(env, fn, "a", "lda", la, transA ? k : m, transA ? m : k, lda, transA ? "m" : "k") ||
      !CheckMatrix(env, fn, "b", "ldb", lb, transB ? n : k, transB ? k : n, ldb, transB ? "k" : "n") ||
      !CheckMatrix(env, fn, "c", "ldc", lc, m, n, ldc, "n")) {
    return nullptr;
  }
  if (m == 0 || n == 0) return nullptr;
  Gemm(static_cast<T>(alpha), static_cast<T>(beta), transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
       static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), a, static_cast<blasint>(lda), b,
       static_cast<blasint>(ldb), c, static_cast<blasint>(ldc));
  return nullptr;
}

// Level-1/2 routines (the few that pay off in a training step: the optimizer's vector updates,
// bias rows and bias gradients). Vectors are contiguous (increment 1); each length is checked
// against the arrays, so BLAS never reads past a view.

bool CheckVector(napi_env env, const char* fn, const char* name, int64_t length, int64_t n) {
  if (length < n) {
    return ThrowRange(env, fn, std::string("argument '") + name + "' has " + std::to_string(length) + " elements, needs n = " + std::to_string(n));
  }
  return true;
}

void Axpy(blasint n, float a, const float* x, float* y) { Level12(n, [&] { cblas_saxpy(n, a, x, 1, y, 1); }); }
void Axpy(blasint n, double a, const double* x, double* y) { Level12(n, [&] { cblas_daxpy(n, a, x, 1, y, 1); }); }
void Axpby(blasint n, float a, const float* x, float b, float* y) { Level12(n, [&] { cblas_saxpby(n, a, x, 1, b, y, 1); }); }
void Axpby(blasint n, double a, const double* x, double b, double* y) { Level12(n, [&] { cblas_daxpby(n, a, x, 1, b, y, 1); }); }
void Scal(blasint n, float a, float* x) { Level12(n, [&] { cblas_sscal(n, a, x, 1); }); }
void Scal(blasint n, double a, double* x) { Level12(n, [&] { cblas_dscal(n, a, x, 1); }); }
// float32 dot products accumulate in double (dsdot), as chainopt's TypeScript dot does.
double Dot(blasint n, const float* x, const float* y) {
  double r = 0;
  Level12(n, [&] { r = cblas_dsdot(n, x, 1, y, 1); });
  return r;
}
double Dot(blasint n, const double* x, const double* y) {
  double r = 0;
  Level12(n, [&] { r = cblas_ddot(n, x, 1, y, 1); });
  return r;
}
void Gemv(bool t, blasint m, blasint n, float alpha, const float* a, blasint lda, const float* x, float beta, float* y) {
  Level12(static_cast<double>(m) * n, [&] { cblas_sgemv(CblasRowMajor, t ? CblasTrans : CblasNoTrans, m, n, alpha, a, lda, x, 1, beta, y, 1); });
}
void Gemv(bool t, blasint m, blasint n, double alpha, const double* a, blasint lda, const double* x, double beta, double* y) {
  Level12(static_cast<double>(m) * n, [&] { cblas_dgemv(CblasRowMajor, t ? CblasTrans : CblasNoTrans, m, n, alpha, a, lda, x, 1, beta, y, 1); });
}
void Ger(blasint m, blasint n, float alpha, const float* x, const float* y, float* a, blasint lda) {
  Level12(static_cast<double>(m) * n, [&] { cblas_sger(CblasRowMajor, m, n, alpha, x, 1, y, 1, a, lda); });
}
void Ger(blasint m, blasint n, double alpha, const double* x, const double* y, double* a, blasint lda) {
  Level12(static_cast<double>(m) * n, [&] { cblas_dger(CblasRowMajor, m, n, alpha, x, 1, y, 1, a, lda); });
}

template <typename T>
constexpr const char* Name(const char* s, const char* d) {
  return ArrayKind<T>::type == napi_float32_array ? s : d;
}

// axpy(n, alpha, x, y): y ← α·x + y.
template <typename T>
napi_value AxpyEntry(napi_env env, napi_callback_info info) {
  const char* fn = Name<T>("saxpy", "daxpy");
  napi_value argv[4];
  int64_t n, lx, ly;
  double alpha;
  T *x, *y;
  if (!Args(env, info, fn, 4, "(n, alpha, x, y)", argv) || !GetDim(env, argv[0], fn, "n", &n) ||
      !GetNumber(env, argv[1], fn, "alpha", &alpha) || !GetArray<T>(env, argv[2], fn, "x", &x, &lx) ||
      !GetArray<T>(env, argv[3], fn, "y", &y, &ly) || !CheckVector(env, fn, "x", lx, n) || !CheckVector(env, fn, "y", ly, n)) {
    return nullptr;
  }
  if (n > 0) Axpy(static_cast<blasint>(n), static_cast<T>(alpha), x, y);
  return nullptr;
}

// axpby(n, alpha, x, beta, y): y ← α·x + β·y (OpenBLAS extension; β = 0 overwrites y).
template <typename T>
napi_value AxpbyEntry(napi_env env, napi_callback_info info) {
  const char* fn = Name<T>("saxpby", "daxpby");
  napi_value argv[5];
  int64_t n, lx, ly;
  double alpha, beta;
  T *x, *y;
  if (!Args(env, info, fn, 5, "(n, alpha, x, beta, y)", argv) || !GetDim(env, argv[0], fn, "n", &n) ||
      !GetNumber(env, argv[1], fn, "alpha", &alpha) || !GetArray<T>(env, argv[2], fn, "x", &x, &lx) ||
      !GetNumber(env, argv[3], fn, "beta", &beta) || !GetArray<T>(env, argv[4], fn, "y", &y, &ly) ||
      !CheckVector(env, fn, "x", lx, n) || !CheckVector(env, fn, "y", ly, n)) {
    return nullptr;
  }
  if (n > 0) Axpby(static_cast<blasint>(n), static_cast<T>(alpha), x, static_cast<T>(beta), y);
  return nullptr;
}

// scal(n, alpha, x): x ← α·x.
template <typename T>
napi_value ScalEntry(napi_env env, napi_callback_info info) {
  const char* fn = Name<T>("sscal", "dscal");
  napi_value argv[3];
  int64_t n, lx;
  double alpha;
  T* x;
  if (!Args(env, info, fn, 3, "(n, alpha, x)", argv) || !GetDim(env, argv[0], fn, "n", &n) ||
      !GetNumber(env, argv[1], fn, "alpha", &alpha) || !GetArray<T>(env, argv[2], fn, "x", &x, &lx) ||
      !CheckVector(env, fn, "x", lx, n)) {
    return nullptr;
  }
  if (n > 0) Scal(static_cast<blasint>(n), static_cast<T>(alpha), x);
  return nullptr;
}

// dot(n, x, y) → ⟨x, y⟩ as a double (float32: dsdot, accumulated in double).
template <typename T>
napi_value DotEntry(napi_env env, napi_callback_info info) {
  const char* fn = Name<T>("sdot", "ddot");
  napi_value argv[3];
  int64_t n, lx, ly;
  T *x, *y;
  if (!Args(env, info, fn, 3, "(n, x, y)", argv) || !GetDim(env, argv[0], fn, "n", &n) ||
      !GetArray<T>(env, argv[1], fn, "x", &x, &lx) || !GetArray<T>(env, argv[2], fn, "y", &y, &ly) ||
      !CheckVector(env, fn, "x", lx, n) || !CheckVector(env, fn, "y", ly, n)) {
    return nullptr;
  }
  napi_value out;
  napi_create_double(env, n > 0 ? Dot(static_cast<blasint>(n), x, y) : 0.0, &out);
  return out;
}

// gemv(trans, m, n, alpha, a, lda, x, beta, y): y ← α·op(A)·x + β·y, A row-major m×n (row stride
// lda); x has n entries (m when trans), y has m (n when trans). β = 0 overwrites y.
template <typename T>
napi_value GemvEntry(napi_env env, napi_callback_info info) {
  const char* fn = Name<T>("sgemv", "dgemv");
  napi_value argv[9];
  bool trans;
  int64_t m, n, lda, la, lx, ly;
  double alpha, beta;
  T *a, *x, *y;
  if (!Args(env, info, fn, 9, "(trans, m, n, alpha, a, lda, x, beta, y)", argv) || !GetBool(env, argv[0], fn, "trans", &trans) ||
      !GetDim(env, argv[1], fn, "m", &m) || !GetDim(env, argv[2], fn, "n", &n) || !GetNumber(env, argv[3], fn, "alpha", &alpha) ||
      !GetArray<T>(env, argv[4], fn, "a", &a, &la) || !GetDim(env, argv[5], fn, "lda", &lda) ||
      !GetArray<T>(env, argv[6], fn, "x", &x, &lx) || !GetNumber(env, argv[7], fn, "beta", &beta) ||
      !GetArray<T>(env, argv[8], fn, "y", &y, &ly) || !CheckMatrix(env, fn, "a", "lda", la, m, n, lda, "n") ||
      !CheckVector(env, fn, "x", lx, trans ? m : n) || !CheckVector(env, fn, "y", ly, trans ? n : m)) {
    return nullptr;
  }
  if (m == 0 || n == 0) {
    // Empty product: y ← β·y (BLAS would return without touching y).
    const int64_t len = trans ? n : m;
    for (int64_t i = 0; i < len; i++) y[i] = beta == 0 ? T(0) : static_cast<T>(beta * y[i]);
    return nullptr;
  }
  Gemv(trans, static_cast<blasint>(m), static_cast<blasint>(n), static_cast<T>(alpha), a, static_cast<blasint>(lda), x,
       static_cast<T>(beta), y);
  return nullptr;
}

// ger(m, n, alpha, x, y, a, lda): A ← α·x·yᵀ + A, A row-major m×n (row stride lda).
template <typename T>
napi_value GerEntry(napi_env env, napi_callback_info info) {
  const char* fn = Name<T>("sger", "dger");
  napi_value argv[7];
  int64_t m, n, lda, la, lx, ly;
  double alpha;
  T *a, *x, *y;
  if (!Args(env, info, fn, 7, "(m, n, alpha, x, y, a, lda)", argv) || !GetDim(env, argv[0], fn, "m", &m) ||
      !GetDim(env, argv[1], fn, "n", &n) || !GetNumber(env, argv[2], fn, "alpha", &alpha) ||
      !GetArray<T>(env, argv[3], fn, "x", &x, &lx) || !GetArray<T>(env, argv[4], fn, "y", &y, &ly) ||
      !GetArray<T>(env, argv[5], fn, "a", &a, &la) || !GetDim(env, argv[6], fn, "lda", &lda) ||
      !CheckVector(env, fn, "x", lx, m) || !CheckVector(env, fn, "y", ly, n) || !CheckMatrix(env, fn, "a", "lda", la, m, n, lda, "n")) {
    return nullptr;
  }
  if (m > 0 && n > 0) Ger(static_cast<blasint>(m), static_cast<blasint>(n), static_cast<T>(alpha), x, y, a, static_cast<blasint>(lda));
  return nullptr;
}

void Syrk(CBLAS_UPLO uplo, CBLAS_TRANSPOSE t, blasint n, blasint k, float alpha, const float* a, blasint lda, float beta, float* c,
          blasint ldc) {
  WithThreadsFor(n, n, k, [&] { cblas_ssyrk(CblasRowMajor, uplo, t, n, k, alpha, a, lda, beta, c, ldc); });
}
void Syrk(CBLAS_UPLO uplo, CBLAS_TRANSPOSE t, blasint n, blasint k, double alpha, const double* a, blasint lda, double beta, double* c,
          blasint ldc) {
  WithThreadsFor(n, n, k, [&] { cblas_dsyrk(CblasRowMajor, uplo, t, n, k, alpha, a, lda, beta, c, ldc); });
}

// syrk(upper, trans, n, k, alpha, a, lda, beta, c, ldc): C ← α·op(A)·op(A)ᵀ + β·C on one triangle
// of the row-major n×n C (the upper one, column ≥ row, when `upper`; the other is not touched);
// op(A) = A (n×k stored) or Aᵀ (A stored k×n). Half the multiply-adds of the GEMM.
template <typename T>
napi_value SyrkEntry(napi_env env, napi_callback_info info) {
  const char* fn = Name<T>("ssyrk", "dsyrk");
  napi_value argv[10];
  bool upper, trans;
  int64_t n, k, lda, ldc, la, lc;
  double alpha, beta;
  T *a, *c;
  if (!Args(env, info, fn, 10, "(upper, trans, n, k, alpha, a, lda, beta, c, ldc)", argv) ||
      !GetBool(env, argv[0], fn, "upper", &upper) || !GetBool(env, argv[1], fn, "trans", &trans) ||
      !GetDim(env, argv[2], fn, "n", &n) || !GetDim(env, argv[3], fn, "k", &k) || !GetNumber(env, argv[4], fn, "alpha", &alpha) ||
      !GetArray<T>(env, argv[5], fn, "a", &a, &la) || !GetDim(env, argv[6], fn, "lda", &lda) ||
      !GetNumber(env, argv[7], fn, "beta", &beta) || !GetArray<T>(env, argv[8], fn, "c", &c, &lc) ||
      !GetDim(env, argv[9], fn, "ldc", &ldc) ||
      !CheckMatrix(env, fn, "a", "lda", la, trans ? k : n, trans ? n : k, lda, trans ? "n" : "k") ||
      !CheckMatrix(env, fn, "c", "ldc", lc, n, n, ldc, "n")) {
    return nullptr;
  }
  if (n == 0) return nullptr;
  Syrk(upper ? CblasUpper : CblasLower, trans ? CblasTrans : CblasNoTrans, static_cast<blasint>(n), static_cast<blasint>(k),
       static_cast<T>(alpha), a, static_cast<blasint>(lda), static_cast<T>(beta), c, static_cast<blasint>(ldc));
  return nullptr;
}

// gramHadamard(q, cols, batch, bias, t, p, g, accumulate): the Gram update of one dense layer (see
// src/second-order/gram.ts, structured path), on the upper triangle of row-major q×q matrices:
//   g[r, c] ← (accumulate ? g[r, c] : 0) + t[r, c] · (p[⌊r/cols⌋, ⌊c/cols⌋] + bias),   r ≤ c < q,
// t = Δ Δᵀ (upper triangle, as ssyrk/dsyrk leave it) and p = X Xᵀ (batch×batch, batch·cols = q) in
// the chain's precision, g float64. Each product t·(p + bias) is formed in double (exact for
// float32 factors: 24 + 24 significant bits fit in 53) and added to g in double. Memory-bound
// (q² entries of t and g): rows are split over the OpenMP threads (interleaved in chunks of 16,
// as row r has q − r entries) when q² ≥ 2^18; the result does not depend on the split.
template <typename T>
napi_value GramHadamardEntry(napi_env env, napi_callback_info info) {
  const char* fn = Name<T>("sgramHadamard", "dgramHadamard");
  napi_value argv[8];
  int64_t q, cols, batch, lt, lp, lg;
  double bias;
  bool accumulate;
  T *t, *p;
  double* g;
  if (!Args(env, info, fn, 8, "(q, cols, batch, bias, t, p, g, accumulate)", argv) || !GetDim(env, argv[0], fn, "q", &q) ||
      !GetDim(env, argv[1], fn, "cols", &cols) || !GetDim(env, argv[2], fn, "batch", &batch) ||
      !GetNumber(env, argv[3], fn, "bias", &bias) || !GetArray<T>(env, argv[4], fn, "t", &t, &lt) ||
      !GetArray<T>(env, argv[5], fn, "p", &p, &lp) || !GetArray<double>(env, argv[6], fn, "g", &g, &lg) ||
      !GetBool(env, argv[7], fn, "accumulate", &accumulate)) {
    return nullptr;
  }
  if (cols < 1 || batch * cols != q) {
    ThrowRange(env, fn, "expected q = batch * cols with cols >= 1, got q = " + std::to_string(q) + ", batch = " + std::to_string(batch) +
                            ", cols = " + std::to_string(cols));
    return nullptr;
  }
  if (lt < q * q || lg < q * q || lp < batch * batch) {
    ThrowRange(env, fn, "arrays too short: t and g need q*q entries, p needs batch*batch");
    return nullptr;
  }
#pragma omp parallel for schedule(static, 16) if (q * q >= 262144)
  for (int64_t r = 0; r < q; r++) {
    const int64_t si = r / cols;
    const T* tr = t + r * q;
    double* gr = g + r * q;
    const T* pr = p + si * batch;
    int64_t c = r;
    for (int64_t sj = si; sj < batch; sj++) {
      const double f = static_cast<double>(pr[sj]) + bias;
      const int64_t c1 = (sj + 1) * cols;
      if (accumulate)
        for (; c < c1; c++) gr[c] += static_cast<double>(tr[c]) * f;
      else
        for (; c < c1; c++) gr[c] = static_cast<double>(tr[c]) * f;
    }
  }
  return nullptr;
}

bool CheckSquare(napi_env env, const char* fn, const char* name, int64_t length, int64_t n) {
  if (length < n * n) {
    return ThrowRange(env, fn,
                      std::string("argument '") + name + "' has " + std::to_string(length) + " elements, needs n*n = " +
                          std::to_string(n * n));
  }
  return true;
}

bool CheckRhs(napi_env env, const char* fn, int64_t length, int64_t n, int64_t nrhs) {
  if (length < n * nrhs) {
    return ThrowRange(env, fn,
                      "argument 'b' has " + std::to_string(length) + " elements, needs n*nrhs = " + std::to_string(n * nrhs));
  }
  return true;
}

napi_value Int(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int32(env, static_cast<int32_t>(v), &out);
  return out;
}

// dpotrf(n, a) → info. Cholesky A = L Lᵀ in place of the lower triangle of row-major `a`; the
// strictly upper triangle is zeroed. info > 0: not positive definite.
// The column-major view of row-major A is Aᵀ = A; dpotrf('U') writes U with A = UᵀU into the
// column-major upper triangle, whose element (i, j), i ≤ j, is row-major (j, i): that is L = Uᵀ.
napi_value Dpotrf(napi_env env, napi_callback_info info) {
  const char* fn = "dpotrf";
  napi_value argv[2];
  int64_t n, la;
  double* a;
  if (!Args(env, info, fn, 2, "(n, a)", argv) || !GetDim(env, argv[0], fn, "n", &n) || !GetArray<double>(env, argv[1], fn, "a", &a, &la) ||
      !CheckSquare(env, fn, "a", la, n)) {
    return nullptr;
  }
  if (n == 0) return Int(env, 0);
  const blasint bn = static_cast<blasint>(n);
  blasint status = 0;
  dpotrf_("U", &bn, a, &bn, &status, 1);
  if (status < 0) {
    ThrowRange(env, fn, "LAPACK dpotrf rejected argument " + std::to_string(-status));
    return nullptr;
  }
  if (status == 0) {
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = i + 1; j < n; j++) a[i * n + j] = 0;
  }
  return Int(env, status);
}

// Right-looking blocked Cholesky A = L Lᵀ of the column-major lower triangle of the n×n `a`
// (Golub & Van Loan, "Matrix Computations", 4th ed., Alg. 4.2.9 with blocks): per block column of
// width nb, spotrf of the diagonal block on one thread, then the panel solve (strsm) and the
// trailing update (ssyrk), where the flops are, on all threads. OpenBLAS's own threaded spotrf was
// slower at 2 threads than on 1 for n = 1152 in its OpenMP build (12–13 ms against 8.5 ms, with
// bench/second-order.ts' matrix); returns spotrf's info (> 0: not positive definite).
blasint BlockedCholeskyLower(blasint n, float* a, int threads) {
  constexpr blasint kBlock = 192;
  if (threads <= 1 || n <= 2 * kBlock) {
    blasint info = 0;
    spotrf_("L", &n, a, &n, &info, 1);
    return info;
  }
  for (blasint k = 0; k < n; k += kBlock) {
    const blasint kb = n - k < kBlock ? n - k : kBlock;
    float* akk = a + k + static_cast<size_t>(k) * n;
    blasint info = 0;
    Serially(threads, [&] { spotrf_("L", &kb, akk, &n, &info, 1); });
    if (info != 0) return info + k;
    const blasint rest = n - k - kb;
    if (rest == 0) break;
    float* a21 = akk + kb;
    float* a22 = a21 + static_cast<size_t>(kb) * n;
    cblas_strsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, rest, kb, 1.0f, akk, n, a21, n);  // A21 ← A21 L11⁻ᵀ
    cblas_ssyrk(CblasColMajor, CblasLower, CblasNoTrans, rest, kb, -1.0f, a21, n, 1.0f, a22, n);                   // A22 ← A22 − A21 A21ᵀ
  }
  return 0;
}

// spdSolveMixed(n, a, shift, b) → { info, iter }: solves (A + shift·I) x = b in place of b (one
// right-hand side) for the symmetric A given by the UPPER triangle of row-major `a` (diagonal
// included), A + shift·I positive definite. The upper triangle and the diagonal of `a` are unchanged
// on return; the strictly lower triangle is workspace (written only by the float64 fallback).
// The algorithm and stopping test of LAPACK's dsposv (Buttari et al., "Mixed precision iterative
// refinement techniques for the solution of dense linear systems", IJHPCA 21(4), 2007; LAPACK
// Users' Guide, xSPOSV): Cholesky of the float32 copy of A + shift·I (spotrf), x₀ from it, then
// refinement x ← x + (A + shift·I)₃₂⁻¹ r with the residual r = b − (A + shift·I) x in float64
// (dsymv on the untouched float64 triangle) until
//   ‖r‖∞ < ‖x‖∞ · ‖A + shift·I‖∞ · ε₆₄ · √n    (ε₆₄ = 2⁻⁵³, dsposv's CTE with BWDMAX = 1),
// a backward error at double-precision level. When spotrf fails (not positive definite in
// float32), an entry overflows float32, or 30 refinements do not converge, it falls back to double
// precision: the strictly lower triangle receives A's (transposed), the diagonal A + shift·I, dpotrf
// factors that lower triangle, two dtrsv solve, and the diagonal is restored (iter < 0). info > 0:
// not positive definite in double precision either. Unlike dsposv (dsymm and strsm with one
// column), the refinement uses dsymv and strsv (one pass over a triangle each); the float32 copy is
// a per-thread buffer kept between calls.
// Layout: the row-major upper triangle is the column-major lower one, so spotrf('L') leaves the
// column-major L with A = L Lᵀ in it, i.e. the row-major upper U = Lᵀ with A = Uᵀ U.
napi_value SpdSolveMixed(napi_env env, napi_callback_info info) {
  const char* fn = "spdSolveMixed";
  napi_value argv[4];
  int64_t n, la, lb;
  double shift;
  double *a, *b;
  if (!Args(env, info, fn, 4, "(n, a, shift, b)", argv) || !GetDim(env, argv[0], fn, "n", &n) ||
      !GetArray<double>(env, argv[1], fn, "a", &a, &la) || !GetNumber(env, argv[2], fn, "shift", &shift) ||
      !GetArray<double>(env, argv[3], fn, "b", &b, &lb) || !CheckSquare(env, fn, "a", la, n) || !CheckRhs(env, fn, lb, n, 1)) {
    return nullptr;
  }
  blasint status = 0, iter = 0;
  if (n > 0) {
    thread_local std::vector<float> u32;  // one per thread: worker threads may load the addon too
    thread_local std::vector<float> r32;
    thread_local std::vector<double> x, r, rowsum;
    const size_t un = static_cast<size_t>(n);
    if (u32.size() < un * un) u32.resize(un * un);
    if (r32.size() < un) r32.resize(un);
    if (x.size() < un) {
      x.resize(un);
      r.resize(un);
      rowsum.resize(un);
    }
    const blasint bn = static_cast<blasint>(n);
    constexpr double kFloatMax = 3.4028234663852886e38;
    // ‖A + shift·I‖∞ (= ‖·‖₁, symmetric) from the upper triangle, and its float32 copy.
    bool fits = true;
    for (size_t i = 0; i < un; i++) rowsum[i] = 0;
    for (size_t i = 0; i < un; i++) {
      const double* ai = a + i * un;
      float* ui = u32.data() + i * un;
      const double d = ai[i] + shift;
      fits = fits && std::fabs(d) <= kFloatMax;
      ui[i] = static_cast<float>(d);
      double s = std::fabs(d);
      for (size_t j = i + 1; j < un; j++) {
        const double v = std::fabs(ai[j]);
        s += v;
        rowsum[j] += v;
        fits = fits && v <= kFloatMax;
        ui[j] = static_cast<float>(ai[j]);
      }
      rowsum[i] += s;
    }
    double anrm = 0;
    for (size_t i = 0; i < un; i++) anrm = rowsum[i] > anrm ? rowsum[i] : anrm;
    const double cte = anrm * std::ldexp(1.0, -53) * std::sqrt(static_cast<double>(n));
    const int threads = openblas_get_num_threads();
    blasint sinfo = 1;
    if (fits) sinfo = BlockedCholeskyLower(bn, u32.data(), threads);
    bool converged = false;
    if (sinfo == 0) {
      // z ← (Uᵀ U)⁻¹ v in float32 (into r32); false when v overflows float32.
      auto correction = [&](const double* v) -> bool {
        for (size_t i = 0; i < un; i++) {
          if (!(std::fabs(v[i]) <= kFloatMax)) return false;
          r32[i] = static_cast<float>(v[i]);
        }
        Serially(threads, [&] {
          cblas_strsv(CblasRowMajor, CblasUpper, CblasTrans, CblasNonUnit, bn, u32.data(), bn, r32.data(), 1);    // Uᵀ y = v
          cblas_strsv(CblasRowMajor, CblasUpper, CblasNoTrans, CblasNonUnit, bn, u32.data(), bn, r32.data(), 1);  // U z = y
        });
        return true;
      };
      if (correction(b)) {
        for (size_t i = 0; i < un; i++) x[i] = r32[i];
        for (iter = 0; iter <= 30; iter++) {
          for (size_t i = 0; i < un; i++) r[i] = b[i] - shift * x[i];
          cblas_dsymv(CblasRowMajor, CblasUpper, bn, -1.0, a, bn, x.data(), 1, 1.0, r.data(), 1);  // r = b − (A + shift·I) x
          double xn = 0, rn = 0;
          for (size_t i = 0; i < un; i++) {
            xn = std::fabs(x[i]) > xn ? std::fabs(x[i]) : xn;
            rn = std::fabs(r[i]) > rn ? std::fabs(r[i]) : rn;
          }
          if (rn < xn * cte) {
            converged = true;
            break;
          }
          if (iter == 30 || !correction(r.data())) break;
          for (size_t i = 0; i < un; i++) x[i] += r32[i];
        }
      }
    }
    if (converged) {
      for (size_t i = 0; i < un; i++) b[i] = x[i];
    } else {
      // Double precision in the strictly lower triangle (row-major lower = column-major upper).
      iter = -1;
      for (size_t i = 0; i < un; i++) {
        rowsum[i] = a[i * un + i];  // the diagonal, restored below
        a[i * un + i] += shift;
        for (size_t j = 0; j < i; j++) a[i * un + j] = a[j * un + i];
      }
      dpotrf_("U", &bn, a, &bn, &status, 1);
      if (status == 0) {
        cblas_dtrsv(CblasRowMajor, CblasLower, CblasNoTrans, CblasNonUnit, bn, a, bn, b, 1);
        cblas_dtrsv(CblasRowMajor, CblasLower, CblasTrans, CblasNonUnit, bn, a, bn, b, 1);
      }
      for (size_t i = 0; i < un; i++) a[i * un + i] = rowsum[i];
      if (status < 0) {
        ThrowRange(env, fn, "LAPACK dpotrf rejected argument " + std::to_string(-status));
        return nullptr;
      }
    }
  }
  napi_value out;
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "info", Int(env, status));
  napi_set_named_property(env, out, "iter", Int(env, iter));
  return out;
}

// dpotrs(n, l, b, nrhs): solves L Lᵀ X = B in place of row-major B (n×nrhs) given the lower factor
// from dpotrf. As LAPACK's dpotrs does, two triangular solves (dtrsm), here in row-major so that B
// is used where it lies.
napi_value Dpotrs(napi_env env, napi_callback_info info) {
  const char* fn = "dpotrs";
  napi_value argv[4];
  int64_t n, nrhs, ll, lb;
  double *l, *b;
  if (!Args(env, info, fn, 4, "(n, l, b, nrhs)", argv) || !GetDim(env, argv[0], fn, "n", &n) ||
      !GetArray<double>(env, argv[1], fn, "l", &l, &ll) || !GetArray<double>(env, argv[2], fn, "b", &b, &lb) ||
      !GetDim(env, argv[3], fn, "nrhs", &nrhs) || !CheckSquare(env, fn, "l", ll, n) || !CheckRhs(env, fn, lb, n, nrhs)) {
    return nullptr;
  }
  if (n == 0 || nrhs == 0) return nullptr;
  const blasint bn = static_cast<blasint>(n), br = static_cast<blasint>(nrhs);
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, bn, br, 1.0, l, bn, b, br);  // L Y = B
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, bn, br, 1.0, l, bn, b, br);    // Lᵀ X = Y
  return nullptr;
}

// dsyevd(vectors, n, a, w) → info. Eigenvalues ascending into w; with vectors, row r of `a` holds
// the unit eigenvector of w[r]. The column-major view of symmetric A is A itself, and dsyevd's
// eigenvectors are its columns, i.e. the rows of the row-major buffer: no transposition needed.
napi_value Dsyevd(napi_env env, napi_callback_info info) {
  const char* fn = "dsyevd";
  napi_value argv[4];
  bool vectors;
  int64_t n, la, lw;
  double *a, *w;
  if (!Args(env, info, fn, 4, "(vectors, n, a, w)", argv) || !GetBool(env, argv[0], fn, "vectors", &vectors) ||
      !GetDim(env, argv[1], fn, "n", &n) || !GetArray<double>(env, argv[2], fn, "a", &a, &la) ||
      !GetArray<double>(env, argv[3], fn, "w", &w, &lw) || !CheckSquare(env, fn, "a", la, n)) {
    return nullptr;
  }
  if (lw < n) {
    ThrowRange(env, fn, "argument 'w' has " + std::to_string(lw) + " elements, needs n = " + std::to_string(n));
    return nullptr;
  }
  if (n == 0) return Int(env, 0);
  const blasint bn = static_cast<blasint>(n);
  const char* jobz = vectors ? "V" : "N";
  blasint status = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  dsyevd_(jobz, "L", &bn, a, &bn, w, &work_query, &lwork, &iwork_query, &liwork, &status, 1, 1);
  if (status != 0) {
    ThrowRange(env, fn, "LAPACK dsyevd workspace query failed, info = " + std::to_string(status));
    return nullptr;
  }
  lwork = static_cast<blasint>(work_query);
  liwork = iwork_query;
  std::vector<double> work(static_cast<size_t>(lwork > 1 ? lwork : 1));
  std::vector<blasint> iwork(static_cast<size_t>(liwork > 1 ? liwork : 1));
  dsyevd_(jobz, "L", &bn, a, &bn, w, work.data(), &lwork, iwork.data(), &liwork, &status, 1, 1);
  if (status < 0) {
    ThrowRange(env, fn, "LAPACK dsyevd rejected argument " + std::to_string(-status));
    return nullptr;
  }
  return Int(env, status);
}

// dgesv(n, a, b, nrhs) → info. Solves A X = B in place of row-major B (n×nrhs); `a` is overwritten
// by LU factors. info > 0: A is exactly singular.
// Derivation: the column-major view of `a` is M = Aᵀ; dgetrf gives M = P L U (P = P_0 P_1 ⋯ P_{n-1},
// P_i swapping rows i and ipiv[i]), so A = Uᵀ Lᵀ Pᵀ and X = P (Lᵀ)⁻¹ (Uᵀ)⁻¹ B. In the row-major view
// of the same buffer, the lower triangle holds Uᵀ and the strictly upper one Lᵀ (unit diagonal):
// two row-major dtrsm on B in place, then the row swaps of P applied from i = n−1 down to 0
// (what dgetrs('T') does, without transposing B into a column-major copy).
napi_value Dgesv(napi_env env, napi_callback_info info) {
  const char* fn = "dgesv";
  napi_value argv[4];
  int64_t n, nrhs, la, lb;
  double *a, *b;
  if (!Args(env, info, fn, 4, "(n, a, b, nrhs)", argv) || !GetDim(env, argv[0], fn, "n", &n) ||
      !GetArray<double>(env, argv[1], fn, "a", &a, &la) || !GetArray<double>(env, argv[2], fn, "b", &b, &lb) ||
      !GetDim(env, argv[3], fn, "nrhs", &nrhs) || !CheckSquare(env, fn, "a", la, n) || !CheckRhs(env, fn, lb, n, nrhs)) {
    return nullptr;
  }
  if (n == 0) return Int(env, 0);
  const blasint bn = static_cast<blasint>(n), br = static_cast<blasint>(nrhs);
  std::vector<blasint> ipiv(static_cast<size_t>(n));
  blasint status = 0;
  dgetrf_(&bn, &bn, a, &bn, ipiv.data(), &status);
  if (status < 0) {
    ThrowRange(env, fn, "LAPACK dgetrf rejected argument " + std::to_string(-status));
    return nullptr;
  }
  if (status > 0 || nrhs == 0) return Int(env, status);
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, bn, br, 1.0, a, bn, b, br);  // Uᵀ Y = B
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasUnit, bn, br, 1.0, a, bn, b, br);     // Lᵀ Z = Y
  for (int64_t i = n - 1; i >= 0; i--) {                                                                     // X = P Z
    const int64_t p = ipiv[static_cast<size_t>(i)] - 1;
    if (p == i) continue;
    double* ri = b + i * nrhs;
    double* rp = b + p * nrhs;
    for (int64_t j = 0; j < nrhs; j++) {
      const double t = ri[j];
      ri[j] = rp[j];
      rp[j] = t;
    }
  }
  return Int(env, 0);
}

napi_value SetNumThreads(napi_env env, napi_callback_info info) {
  const char* fn = "setNumThreads";
  napi_value argv[1];
  int64_t n;
  if (!Args(env, info, fn, 1, "(n)", argv) || !GetDim(env, argv[0], fn, "n", &n)) return nullptr;
  if (n < 1 || n > 4096) {
    ThrowRange(env, fn, "argument 'n' must be an integer in [1, 4096], got " + std::to_string(n));
    return nullptr;
  }
  SetBothThreads(static_cast<int>(n));  // OpenBLAS, and OpenMP: oneDNN and the element-wise kernels (docs/performance.md)
  return nullptr;
}

// getThreadCounts() → { openblas, openmp, parallel }: openblas_get_num_threads(),
// omp_get_max_threads() (1 without OpenMP) and openblas_get_parallel(), to check that one setting
// reached both.
napi_value GetThreadCounts(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "openblas", Int(env, openblas_get_num_threads()));
  napi_set_named_property(env, out, "openmp", Int(env, GetOmpThreads()));
  napi_set_named_property(env, out, "parallel", Int(env, Parallel()));
  return out;
}

// serialThresholds([gemm, level12, elementwise]) → [gemm, level12, elementwise]: the sizes under
// which GEMMs (multiply-adds), level-1/2 BLAS (entries) and the element-wise kernels (entries) run
// on one thread; with an array, sets them first (for bench/thresholds.ts, which measures them).
napi_value SerialThresholds(napi_env env, napi_callback_info info) {
  const char* fn = "serialThresholds";
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_valuetype vt = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &vt);
  if (vt != napi_undefined) {
    bool is_array = false;
    uint32_t len = 0;
    double v[3];
    if (napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[0], &len) != napi_ok || len != 3) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "serialThresholds: expected [gemm, level12, elementwise]");
      return nullptr;
    }
    for (uint32_t i = 0; i < 3; i++) {
      napi_value e;
      napi_get_element(env, argv[0], i, &e);
      if (napi_get_value_double(env, e, &v[i]) != napi_ok || !(v[i] >= 0 && v[i] <= 9.0e15)) {
        napi_throw_range_error(env, "ERR_OUT_OF_RANGE", (std::string(fn) + ": thresholds must be numbers in [0, 9e15]").c_str());
        return nullptr;
      }
    }
    g_serial_gemm_work = v[0];
    g_serial_level12 = v[1];
    SetElementwiseParallelMin(v[2]);
  }
  napi_value out;
  napi_create_array_with_length(env, 3, &out);
  const double now[3] = {g_serial_gemm_work, g_serial_level12, GetElementwiseParallelMin()};
  for (uint32_t i = 0; i < 3; i++) {
    napi_value e;
    napi_create_double(env, now[i], &e);
    napi_set_element(env, out, i, e);
  }
  return out;
}

napi_value GetNumThreads(napi_env env, napi_callback_info) { return Int(env, openblas_get_num_threads()); }
napi_value GetNumProcs(napi_env env, napi_callback_info) { return Int(env, openblas_get_num_procs()); }
napi_value GetParallel(napi_env env, napi_callback_info) { return Int(env, Parallel()); }

napi_value Str(napi_env env, const char* s) {
  napi_value out;
  napi_create_string_utf8(env, s ? s : "", NAPI_AUTO_LENGTH, &out);
  return out;
}

napi_value GetConfig(napi_env env, napi_callback_info) { return Str(env, openblas_get_config()); }
napi_value GetCorename(napi_env env, napi_callback_info) { return Str(env, openblas_get_corename()); }

// The file of the OpenBLAS library the dynamic loader picked (e.g.
// /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0), or "" when unknown.
napi_value GetBlasLibrary(napi_env env, napi_callback_info) {
#if defined(__linux__) || defined(__APPLE__)
  Dl_info dl{};
  if (dladdr(reinterpret_cast<void*>(&openblas_get_config), &dl) != 0 && dl.dli_fname != nullptr) return Str(env, dl.dli_fname);
#endif
  return Str(env, "");
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"sgemm", nullptr, GemmEntry<float>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dgemm", nullptr, GemmEntry<double>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"saxpy", nullptr, AxpyEntry<float>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"daxpy", nullptr, AxpyEntry<double>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"saxpby", nullptr, AxpbyEntry<float>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"daxpby", nullptr, AxpbyEntry<double>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sscal", nullptr, ScalEntry<float>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dscal", nullptr, ScalEntry<double>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sdot", nullptr, DotEntry<float>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"ddot", nullptr, DotEntry<double>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sgemv", nullptr, GemvEntry<float>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dgemv", nullptr, GemvEntry<double>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sger", nullptr, GerEntry<float>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dger", nullptr, GerEntry<double>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dpotrf", nullptr, Dpotrf, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"ssyrk", nullptr, SyrkEntry<float>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dsyrk", nullptr, SyrkEntry<double>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sgramHadamard", nullptr, GramHadamardEntry<float>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dgramHadamard", nullptr, GramHadamardEntry<double>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"spdSolveMixed", nullptr, SpdSolveMixed, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dpotrs", nullptr, Dpotrs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dsyevd", nullptr, Dsyevd, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"dgesv", nullptr, Dgesv, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setNumThreads", nullptr, SetNumThreads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"getNumThreads", nullptr, GetNumThreads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"getNumProcs", nullptr, GetNumProcs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"getParallel", nullptr, GetParallel, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"serialThresholds", nullptr, SerialThresholds, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"getThreadCounts", nullptr, GetThreadCounts, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"getBlasLibrary", nullptr, GetBlasLibrary, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"getConfig", nullptr, GetConfig, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"getCorename", nullptr, GetCorename, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"abi", nullptr, nullptr, nullptr, nullptr, Int(env, kAbi), napi_enumerable, nullptr},
      {"openblasVersion", nullptr, nullptr, nullptr, nullptr, Str(env, OPENBLAS_VERSION), napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  RegisterKernels(env, exports);
  RegisterDnn(env, exports);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
