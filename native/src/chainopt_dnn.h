// Registration hooks of the addon's optional parts (see chainopt_blas.cc's Init).
#pragma once

#define NAPI_VERSION 8
#include <node_api.h>

// oneDNN convolution, pooling and batch normalization (chainopt_dnn.cc); defines nothing without CHAINOPT_HAVE_DNNL.
void RegisterDnn(napi_env env, napi_value exports);
// Multi-threaded element-wise kernels: optimizer updates, ReLU (chainopt_kernels.cc).
void RegisterKernels(napi_env env, napi_value exports);
// Sets the OpenMP thread count (oneDNN's runtime and the element-wise kernels); no-op without OpenMP.
void SetOmpThreads(int n);
// The OpenMP thread count (1 without OpenMP).
int GetOmpThreads();
// Length from which the element-wise kernels split their loops across threads (chainopt_kernels.cc).
double GetElementwiseParallelMin();
void SetElementwiseParallelMin(double n);
