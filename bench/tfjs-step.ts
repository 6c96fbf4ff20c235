// The TensorFlow.js side of the benchmarks (bench/side-by-side.ts), run as a child process:
//   node dist/bench/tfjs-step.js '{"batch":128,"warmup":3,"reps":5,"steps":2}'
// Trains the MLP 784-512-512-10 (ReLU, softmax cross-entropy, SGD momentum 0.9, lr 0.01) on a fixed
// synthetic batch with @tensorflow/tfjs-core on the wasm backend (@tensorflow/tfjs-backend-wasm,
// devDependencies), and prints one JSON line. The wasm backend has no Conv2DBackpropFilter, so the
// ConvNet cannot be trained there. Threads: tfjs-backend-wasm turns its multi-threaded build off
// under Node (flag WASM_HAS_MULTITHREAD_SUPPORT is false when IS_NODE, tensorflow/tfjs issue #3830), so this
// side runs on one thread (the SIMD build) whatever the thread count asked.

import { register } from "node:module";

interface Config {
  batch: number;
  warmup: number;
  reps: number;
  steps: number;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? "{}") as Config;
  let tf: typeof import("@tensorflow/tfjs-core");
  try {
    tf = await import("@tensorflow/tfjs-core");
    // tfjs-core's bundles register no gradients (the @tensorflow/tfjs bundle imports them); its
    // dist/register_all_gradients.js is ESM with extensionless relative imports, which Node's
    // resolver refuses: a resolve hook retries them with ".js". Registries and the engine are
    // global in tfjs, so the gradients reach the bundle imported above.
    register(
      `data:text/javascript,${encodeURIComponent(
        "export async function resolve(s, c, next) { try { return await next(s, c); } catch (e) { if (s.startsWith('.') && !s.endsWith('.js')) return next(s + '.js', c); throw e; } }",
      )}`,
    );
    await import("@tensorflow/tfjs-core/dist/register_all_gradients.js");
    await import("@tensorflow/tfjs-backend-wasm");
  } catch (error) {
    const message = error instanceof Error ? error.message.split("\n")[0] : String(error);
    process.stdout.write(
      `${JSON.stringify({ error: `not installed (${message}); npm install -D @tensorflow/tfjs-core @tensorflow/tfjs-backend-wasm` })}\n`,
    );
    return;
  }
  if (!(await tf.setBackend("wasm"))) {
    process.stdout.write(`${JSON.stringify({ error: "the wasm backend did not initialize" })}\n`);
    return;
  }
  await tf.ready();
  const threaded = tf.env().getBool("WASM_HAS_MULTITHREAD_SUPPORT");
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
  const n = cfg.batch;
  const sizes = [784, 512, 512, 10];
  // He-uniform-like init (the values do not change the timing).
  const params: import("@tensorflow/tfjs-core").Variable[] = [];
  for (let l = 0; l < 3; l++) {
    const bound = Math.sqrt(6 / sizes[l]);
    params.push(tf.variable(tf.randomUniform([sizes[l], sizes[l + 1]], -bound, bound, "float32", 1 + l)));
    params.push(tf.variable(tf.zeros([sizes[l + 1]])));
  }
  const x = tf.randomNormal([n, 784], 0, 1, "float32", 7);
  const labels = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: n }, (_, i) => i % 10),
      "int32",
    ),
    10,
  );
  const optimizer = tf.train.momentum(0.01, 0.9);
  const step = () => {
    const cost = optimizer.minimize(
      () => {
        let h: import("@tensorflow/tfjs-core").Tensor = x;
        for (let l = 0; l < 3; l++) {
          h = tf.add(tf.matMul(h, params[2 * l]), params[2 * l + 1]);
          if (l < 2) h = tf.relu(h);
        }
        return tf.losses.softmaxCrossEntropy(labels, h) as import("@tensorflow/tfjs-core").Scalar;
      },
      true,
      params,
    );
    // Read the loss, as the other sides do (and so that the step has finished).
    cost?.dataSync();
    cost?.dispose();
  };
  for (let i = 0; i < cfg.warmup; i++) step();
  const times: number[] = [];
  for (let r = 0; r < cfg.reps; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < cfg.steps; i++) step();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6 / cfg.steps);
  }
  times.sort((a, b) => a - b);
  const h = times.length >> 1;
  const medianMs = times.length % 2 ? times[h] : (times[h - 1] + times[h]) / 2;
  process.stdout.write(
    `${JSON.stringify({
      version: tf.version_core,
      backend: `wasm${simd ? " SIMD" : ""}`,
      threads: threaded ? "multi-threaded build" : "1 thread: no threaded wasm under Node",
      medianMs,
      bestMs: times[0],
    })}\n`,
  );
}

main().catch((error) => {
  process.stdout.write(`${JSON.stringify({ error: error instanceof Error ? error.message : String(error) })}\n`);
});
