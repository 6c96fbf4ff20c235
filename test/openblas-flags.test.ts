// native/src/openblas-flags.mjs: which OpenBLAS build the addon links (docs/performance.md,
// "Threading policy"): the OpenMP build when a directory holds one, the pkg-config build otherwise
// or when CHAINOPT_OPENBLAS=pthreads, and a failure when CHAINOPT_OPENBLAS=openmp finds none.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { packageRoot } from "../src/node/native-backend.js";

const script = join(packageRoot(), "native", "src", "openblas-flags.mjs");
type Find = (env: Record<string, string | undefined>) => { dir: string | null; reason: string | null };
const { findOpenMpOpenBlas } = (await import(pathToFileURL(script).href)) as { findOpenMpOpenBlas: Find };

const withLib = mkdtempSync(join(tmpdir(), "chainopt-openblas-omp-"));
writeFileSync(join(withLib, "libopenblas.so.0"), "");
const empty = mkdtempSync(join(tmpdir(), "chainopt-openblas-none-"));
after(() => {
  rmSync(withLib, { recursive: true, force: true });
  rmSync(empty, { recursive: true, force: true });
});

function flags(env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const { CHAINOPT_OPENBLAS: _, CHAINOPT_OPENBLAS_OPENMP_DIR: __, ...inherited } = process.env;
  const r = spawnSync(process.execPath, [script, "libs"], { env: { ...inherited, ...env }, encoding: "utf8" });
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr };
}

describe("openblas-flags.mjs", () => {
  it("finds an OpenMP build by directory, and links it by path with an rpath", () => {
    assert.deepEqual(findOpenMpOpenBlas({ CHAINOPT_OPENBLAS_OPENMP_DIR: withLib }), { dir: withLib, reason: null });
    const r = flags({ CHAINOPT_OPENBLAS_OPENMP_DIR: withLib });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `-L${withLib} -l:libopenblas.so.0 -Wl,-rpath,${withLib}`);
  });

  it("falls back to the default build without one, or when CHAINOPT_OPENBLAS=pthreads", () => {
    assert.equal(findOpenMpOpenBlas({ CHAINOPT_OPENBLAS_OPENMP_DIR: empty }).dir, null);
    assert.equal(findOpenMpOpenBlas({ CHAINOPT_OPENBLAS: "pthreads", CHAINOPT_OPENBLAS_OPENMP_DIR: withLib }).dir, null);
    const envs: Record<string, string>[] = [
      { CHAINOPT_OPENBLAS_OPENMP_DIR: empty },
      { CHAINOPT_OPENBLAS: "pthreads", CHAINOPT_OPENBLAS_OPENMP_DIR: withLib },
    ];
    for (const env of envs) {
      const r = flags(env);
      assert.equal(r.status, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /-l:libopenblas\.so\.0/);
      assert.match(r.stdout, /-lopenblas/);
    }
  });

  it("CHAINOPT_OPENBLAS=openmp fails, naming the reason, when no OpenMP build is found", () => {
    const r = flags({ CHAINOPT_OPENBLAS: "openmp", CHAINOPT_OPENBLAS_OPENMP_DIR: empty });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /CHAINOPT_OPENBLAS=openmp: no OpenMP build of OpenBLAS/);
  });

  it("prints nothing when imported (build-native.mjs imports it)", () => {
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", `await import(${JSON.stringify(pathToFileURL(script).href)})`], {
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout + r.stderr, "");
  });
});
