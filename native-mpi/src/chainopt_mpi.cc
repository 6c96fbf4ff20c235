// chainopt_mpi: a thin N-API binding over MPI (Open MPI or MPICH, C API only) for data-parallel
// training: init/finalize, rank/size, in-place sum all-reduce, broadcast, all-gather and barrier
// on Float32Array/Float64Array, and abort.
//
// Design notes
// - Plain C N-API (node_api.h, ABI-stable), like native/src/chainopt_blas.cc.
// - Node loads addons with dlopen(RTLD_LOCAL). Open MPI loads its components (transports,
//   launchers) as plugins that expect libmpi's symbols in the global namespace, so before
//   MPI_Init we re-open the libmpi this addon is linked against with RTLD_GLOBAL (found with
//   dladdr on MPI_Init). This is the documented work-around for embedding Open MPI in a
//   dlopen'ed module (Open MPI FAQ, "dynamic loading"; mpi4py does the same).
// - Calls are blocking and synchronous on the JavaScript thread: a collective is a barrier of
//   the training step anyway. Errors are returned by MPI (MPI_ERRORS_RETURN on MPI_COMM_WORLD)
//   and thrown as JavaScript errors naming the function and MPI's error string.
// - Buffers are the typed arrays' own memory (napi_get_typedarray_info returns the data pointer
//   advanced by byteOffset): no copies.

#define NAPI_VERSION 8
#include <node_api.h>

#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <dlfcn.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

// Version of the JS-facing interface of this addon; src/node/distributed/mpi.ts checks it.
constexpr int kAbi = 1;

napi_value Throw(napi_env env, const char* fn, const std::string& message) {
  const std::string m = std::string("mpi.") + fn + ": " + message;
  napi_throw_error(env, "ERR_CHAINOPT_MPI", m.c_str());
  return nullptr;
}

bool Check(napi_env env, const char* fn, int rc) {
  if (rc == MPI_SUCCESS) return true;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  Throw(env, fn, std::string(text, static_cast<size_t>(len)));
  return false;
}

napi_value Number(napi_env env, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  return v;
}

napi_value Undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

bool Initialized() {
  int flag = 0;
  MPI_Initialized(&flag);
  return flag != 0;
}

bool Finalized() {
  int flag = 0;
  MPI_Finalized(&flag);
  return flag != 0;
}

bool Ready(napi_env env, const char* fn) {
  if (Initialized() && !Finalized()) return true;
  Throw(env, fn, Finalized() ? "MPI was finalized" : "MPI is not initialized (call init first)");
  return false;
}

struct View {
  void* data = nullptr;
  size_t length = 0;
  MPI_Datatype type = MPI_DATATYPE_NULL;
  const char* kind = "";
};

// A Float32Array or Float64Array argument.
bool GetArray(napi_env env, napi_value value, const char* fn, const char* name, View* out) {
  bool is = false;
  napi_is_typedarray(env, value, &is);
  if (!is) {
    Throw(env, fn, std::string(name) + " must be a Float32Array or Float64Array");
    return false;
  }
  napi_typedarray_type t;
  napi_value buffer;
  size_t offset = 0;
  napi_get_typedarray_info(env, value, &t, &out->length, &out->data, &buffer, &offset);
  if (t == napi_float32_array) {
    out->type = MPI_FLOAT;
    out->kind = "Float32Array";
  } else if (t == napi_float64_array) {
    out->type = MPI_DOUBLE;
    out->kind = "Float64Array";
  } else {
    Throw(env, fn, std::string(name) + " must be a Float32Array or Float64Array");
    return false;
  }
  if (out->length > static_cast<size_t>(INT32_MAX)) {
    Throw(env, fn, std::string(name) + " has more than 2^31 - 1 elements (MPI counts are int)");
    return false;
  }
  return true;
}

bool GetInt(napi_env env, napi_value value, const char* fn, const char* name, int32_t* out) {
  if (napi_get_value_int32(env, value, out) != napi_ok) {
    Throw(env, fn, std::string(name) + " must be an integer");
    return false;
  }
  return true;
}

// init(): MPI_Init (once; a second call returns the same rank/size). Returns {rank, size}.
napi_value Init(napi_env env, napi_callback_info) {
  if (Finalized()) return Throw(env, "init", "MPI was already finalized in this process");
  if (!Initialized()) {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&MPI_Init), &info) != 0 && info.dli_fname != nullptr) {
      dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    }
    if (!Check(env, "init", MPI_Init(nullptr, nullptr))) return nullptr;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  napi_value obj;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "rank", Number(env, rank));
  napi_set_named_property(env, obj, "size", Number(env, size));
  return obj;
}

napi_value Finalize(napi_env env, napi_callback_info) {
  if (Initialized() && !Finalized()) {
    if (!Check(env, "finalize", MPI_Finalize())) return nullptr;
  }
  return Undefined(env);
}

napi_value IsInitialized(napi_env env, napi_callback_info) {
  napi_value v;
  napi_get_boolean(env, Initialized() && !Finalized(), &v);
  return v;
}

napi_value Rank(napi_env env, napi_callback_info) {
  if (!Ready(env, "rank")) return nullptr;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return Number(env, rank);
}

napi_value Size(napi_env env, napi_callback_info) {
  if (!Ready(env, "size")) return nullptr;
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return Number(env, size);
}

// allreduceSum(x): x ← Σ_ranks x, in place (MPI_IN_PLACE, MPI_SUM).
napi_value AllreduceSum(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 1) return Throw(env, "allreduceSum", "expected 1 argument (x)");
  if (!Ready(env, "allreduceSum")) return nullptr;
  View x;
  if (!GetArray(env, argv[0], "allreduceSum", "x", &x)) return nullptr;
  if (!Check(env, "allreduceSum", MPI_Allreduce(MPI_IN_PLACE, x.data, static_cast<int>(x.length), x.type, MPI_SUM, MPI_COMM_WORLD)))
    return nullptr;
  return Undefined(env);
}

// broadcast(x, root): x ← x of rank `root`, in place.
napi_value Broadcast(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 2) return Throw(env, "broadcast", "expected 2 arguments (x, root)");
  if (!Ready(env, "broadcast")) return nullptr;
  View x;
  int32_t root = 0;
  if (!GetArray(env, argv[0], "broadcast", "x", &x) || !GetInt(env, argv[1], "broadcast", "root", &root)) return nullptr;
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (root < 0 || root >= size) return Throw(env, "broadcast", "root " + std::to_string(root) + " is not a rank of " + std::to_string(size));
  if (!Check(env, "broadcast", MPI_Bcast(x.data, static_cast<int>(x.length), x.type, root, MPI_COMM_WORLD))) return nullptr;
  return Undefined(env);
}

// allgather(send, recv): recv[r·n .. (r+1)·n) ← send of rank r (n = send.length; recv.length = size·n).
napi_value Allgather(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 2) return Throw(env, "allgather", "expected 2 arguments (send, recv)");
  if (!Ready(env, "allgather")) return nullptr;
  View s, r;
  if (!GetArray(env, argv[0], "allgather", "send", &s) || !GetArray(env, argv[1], "allgather", "recv", &r)) return nullptr;
  if (s.type != r.type) return Throw(env, "allgather", std::string("send is a ") + s.kind + " but recv a " + r.kind);
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (r.length != s.length * static_cast<size_t>(size))
    return Throw(env, "allgather",
                 "recv has " + std::to_string(r.length) + " elements, expected size × send.length = " + std::to_string(size) + " × " +
                     std::to_string(s.length));
  if (!Check(env, "allgather",
             MPI_Allgather(s.data, static_cast<int>(s.length), s.type, r.data, static_cast<int>(s.length), r.type, MPI_COMM_WORLD)))
    return nullptr;
  return Undefined(env);
}

napi_value Barrier(napi_env env, napi_callback_info) {
  if (!Ready(env, "barrier")) return nullptr;
  if (!Check(env, "barrier", MPI_Barrier(MPI_COMM_WORLD))) return nullptr;
  return Undefined(env);
}

// abort(code): MPI_Abort on MPI_COMM_WORLD: the launcher (mpirun) kills every rank. Does not return.
napi_value Abort(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t code = 1;
  if (argc >= 1) napi_get_value_int32(env, argv[0], &code);
  if (Initialized() && !Finalized()) MPI_Abort(MPI_COMM_WORLD, code == 0 ? 1 : code);
  return Undefined(env);
}

napi_value LibraryVersion(napi_env env, napi_callback_info) {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(text, &len);
  std::string s(text, static_cast<size_t>(len));
  const size_t nl = s.find('\n');
  if (nl != std::string::npos) s = s.substr(0, nl);
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ' || s.back() == ',')) s.pop_back();
  napi_value v;
  napi_create_string_utf8(env, s.c_str(), s.size(), &v);
  return v;
}

napi_value ModuleInit(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"finalize", nullptr, Finalize, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"initialized", nullptr, IsInitialized, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rank", nullptr, Rank, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"size", nullptr, Size, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"allreduceSum", nullptr, AllreduceSum, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"broadcast", nullptr, Broadcast, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"allgather", nullptr, Allgather, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"barrier", nullptr, Barrier, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"abort", nullptr, Abort, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"libraryVersion", nullptr, LibraryVersion, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"abi", nullptr, nullptr, nullptr, nullptr, Number(env, kAbi), napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, ModuleInit)
