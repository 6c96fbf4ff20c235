import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The playground is a static page: `npm run build:playground` writes it to playground/dist with
// relative URLs (base "./"), so the folder can be hosted anywhere or served by `chainopt playground`.
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", chunkSizeWarningLimit: 4000 },
  worker: { format: "es" },
  logLevel: "warn",
});
