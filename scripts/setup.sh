#!/usr/bin/env bash
# chainopt set-up: system packages (where possible), npm dependencies, TypeScript build, native
# BLAS addon. Idempotent: a second run only checks, and says little.
#
#   scripts/setup.sh              all steps, in order
#   scripts/setup.sh native       only the named steps (any of: system browser npm build native)
#   CHAINOPT_NO_APT=1             never call apt-get (the system step only reports what is missing)
#   CHAINOPT_SKIP_NATIVE=1        do not build the native addon (chainopt then uses its portable backend)
#   CHAINOPT_SKIP_MPI=1           do not build the MPI addon (`train --distributed` then unavailable)
#
# Adding a step: write a function `step_<name>` below and add <name> to STEPS (in order).
set -euo pipefail

STEPS=(system openblas_openmp onednn browser npm build native mpi)

cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }
die() {
  printf 'setup: error: %s\n' "$*" >&2
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

is_debian_like() {
  [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release && have apt-get
}

# System packages for the native backend: OpenBLAS (headers + library), pkg-config, and a C++
# toolchain for node-gyp. Installed with apt-get when running as root on Debian/Ubuntu.
step_system() {
  local missing=()
  pkg-config --exists openblas 2>/dev/null || missing+=(libopenblas-dev)
  have pkg-config || missing+=(pkg-config)
  have g++ || missing+=(g++)
  have make || missing+=(make)
  have python3 || missing+=(python3)
  # --- mpi (docs/distributed.md): Open MPI for the optional data-parallel addon; never fatal ---
  { have mpicc || have mpicc.openmpi || pkg-config --exists ompi 2>/dev/null; } || missing+=(libopenmpi-dev)
  { have mpirun || have mpirun.openmpi; } || missing+=(openmpi-bin)
  # --- end mpi ---
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && is_debian_like && [ -z "${CHAINOPT_NO_APT:-}" ]; then
    log "installing ${missing[*]} with apt-get ..."
    if DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
      log "installed ${missing[*]}"
    else
      log "apt-get failed: chainopt will use its portable (slow) backend until ${missing[*]} are installed"
    fi
  else
    log "missing for the fast native backend (and the optional MPI addon): ${missing[*]}"
    log "  install them (Debian/Ubuntu: sudo apt-get install -y ${missing[*]}), then run: npm run build:native"
    log "  until then chainopt uses its portable TypeScript backend"
  fi
}

# --- step openblas_openmp (docs/performance.md, "Threading policy") ------------------------------
# OpenBLAS's OpenMP build (Debian/Ubuntu `libopenblas0-openmp`, /usr/lib/<triplet>/openblas-openmp/):
# the native addon links it when present, so that OpenBLAS, oneDNN and chainopt's kernels share one
# OpenMP thread pool. It does not change the system's default BLAS (the alternatives keep the
# pthreads build). Optional and never fatal: without it the addon links the pthreads build.
step_openblas_openmp() {
  [ -n "${CHAINOPT_OPENBLAS:-}" ] && [ "${CHAINOPT_OPENBLAS}" = pthreads ] && return 0
  ls /usr/lib/*/openblas-openmp/libopenblas.so.0 >/dev/null 2>&1 && return 0
  is_debian_like || return 0
  if [ "$(id -u)" -eq 0 ] && [ -z "${CHAINOPT_NO_APT:-}" ]; then
    log "installing libopenblas0-openmp with apt-get (one OpenMP thread pool for OpenBLAS and oneDNN) ..."
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libopenblas0-openmp >/dev/null 2>&1 ||
      { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libopenblas0-openmp >/dev/null 2>&1; }; then
      log "installed libopenblas0-openmp"
    else
      log "apt-get install libopenblas0-openmp failed: the addon uses OpenBLAS's pthreads build (two thread pools)"
    fi
  else
    log "libopenblas0-openmp missing: the addon uses OpenBLAS's pthreads build (for one thread pool: sudo apt-get install -y libopenblas0-openmp, then npm run build:native)"
  fi
}
# --- end step openblas_openmp ---------------------------------------------------------------------

# --- step onednn (docs/performance.md) ----------------------------------------------------------
# oneDNN 2.x (Debian/Ubuntu `libdnnl-dev`) for the native addon's float32 convolution and pooling.
# Optional and never fatal: without it the addon is built with im2col + OpenBLAS convolutions.
step_onednn() {
  [ -f /usr/include/oneapi/dnnl/dnnl.hpp ] && return 0
  [ -n "${CHAINOPT_NO_DNNL:-}" ] && return 0
  if [ "$(id -u)" -eq 0 ] && is_debian_like && [ -z "${CHAINOPT_NO_APT:-}" ]; then
    log "installing libdnnl-dev with apt-get (oneDNN convolution and pooling kernels) ..."
    if DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libdnnl-dev >/dev/null; then
      log "installed libdnnl-dev"
    else
      log "apt-get install libdnnl-dev failed: convolutions will use im2col + OpenBLAS"
    fi
  else
    log "oneDNN missing: convolutions use im2col + OpenBLAS (for oneDNN: sudo apt-get install -y libdnnl-dev, then npm run build:native)"
  fi
}
# --- end step onednn ----------------------------------------------------------------------------

# --- step browser (for the report-browser test) ------------------------------------------------
# Debian's `chromium` for test/report-browser.test.ts (driven by the npm devDependency
# playwright-core, which downloads no browser of its own). Never fatal: without it that test skips,
# saying why. (Regenerating test/fixtures/torch needs `python3-torch` too; the fixtures are committed.)
step_browser() {
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" -eq 0 ] && is_debian_like && [ -z "${CHAINOPT_NO_APT:-}" ]; then
    log "installing chromium with apt-get (for the report's real-browser test) ..."
    if DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
      log "installed chromium"
    else
      log "apt-get install chromium failed: the report's real-browser test will be skipped"
    fi
  else
    log "chromium missing: the report's real-browser test will be skipped (Debian/Ubuntu: sudo apt-get install -y chromium)"
  fi
}
# --- end step browser ---------------------------------------------------------------------------

# npm dependencies: `npm ci` (exactly the committed lock file, which lists the optional packages of
# every platform, so it works on any OS/CPU) when node_modules is missing or older than package.json
# or the lock file; nothing otherwise. Never `npm install`: that would rewrite the lock file.
# (`npm ci` runs the package's install script, which builds the native addon.)
step_npm() {
  have npm || die "npm not found: install Node.js >= 20 (https://nodejs.org)"
  [ -f package-lock.json ] || die "package-lock.json missing: restore it (git checkout package-lock.json)"
  local stamp=node_modules/.package-lock.json
  if [ ! -d node_modules ] || [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
    log "installing npm dependencies (npm ci) ..."
    npm ci --no-audit --no-fund --loglevel=error ||
      die "npm ci failed: package.json and package-lock.json disagree (after editing dependencies run 'npm install' once and commit the lock file)"
  fi
}

step_build() {
  npm run --silent build || die "TypeScript build failed (npm run build)"
}

# The native BLAS addon; never fatal (the portable backend works without it). Skipped when it is
# newer than its sources and loads.
step_native() {
  [ -n "${CHAINOPT_SKIP_NATIVE:-}" ] && return 0
  node scripts/build-native.mjs --quiet
  if [ ! -f native/build/Release/chainopt_blas.node ]; then
    log "native BLAS backend not available: chainopt will use its portable backend (see the messages above)"
  fi
}

# --- step mpi (docs/distributed.md) -------------------------------------------------------------
# The optional MPI addon for `chainopt train --distributed`; never fatal (everything else works
# without it). Skipped when up to date, or with CHAINOPT_SKIP_MPI=1.
step_mpi() {
  [ -n "${CHAINOPT_SKIP_MPI:-}" ] && return 0
  node scripts/build-mpi.mjs --quiet || true
  [ -f native-mpi/build/Release/chainopt_mpi.node ] || log "MPI addon not available: chainopt train --distributed is unavailable (see the messages above)"
}
# --- end step mpi --------------------------------------------------------------------------------

step_data() { bash scripts/setup-data.sh ${CHAINOPT_CIFAR10:+--cifar10}; } # optional, not in STEPS: `scripts/setup.sh data` (sklearn CSVs, Fashion-MNIST; CIFAR-10 with CHAINOPT_CIFAR10=1)

summary() {
  [ -f dist/src/node/index.js ] || return 0
  node --input-type=module -e '
    const { loadNativeBackend, nativeLoadError } = await import("./dist/src/node/index.js");
    const b = loadNativeBackend();
    console.error("setup: done; backend: " + (b ? b.describe() : "portable TypeScript (native: " + nativeLoadError() + ")"));
  ' || true
}

main() {
  local steps=("$@")
  [ "${#steps[@]}" -eq 0 ] && steps=("${STEPS[@]}")
  for s in "${steps[@]}"; do
    declare -F "step_$s" >/dev/null || die "unknown step '$s' (steps: ${STEPS[*]})"
    "step_$s"
  done
  summary
}

main "$@"
