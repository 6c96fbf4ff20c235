import type { Command } from "commander";
import { renderReport } from "../../node/report.js";

/** `chainopt report RUN_DIR [RUN_DIR…] [--out report.html]`: one self-contained HTML page comparing runs. */
export function register(program: Command): void {
  program
    .command("report")
    .description(
      "render one self-contained HTML page comparing runs (loss/accuracy curves, learning rate, gradient norms, per-layer certificates), plus SVG/CSV/PNG files of each plot",
    )
    .argument(
      "<run-dirs...>",
      "run directories (each with metrics.jsonl; config.json, summary.json, certificate.json, smoothing.json used when present)",
    )
    .option("-o, --out <file>", "HTML file to write", "report.html")
    .option("--plots-dir <dir>", "folder for the SVG/CSV/PNG files of each plot (default: <out>-plots beside the page)")
    .option("--no-plots", "write only the HTML page")
    .option("--no-png", "skip PNG files")
    .option("--title <title>", "page title")
    .action(async (runDirs: string[], opts: { out: string; plotsDir?: string; plots: boolean; png: boolean; title?: string }) => {
      const result = await renderReport(runDirs, opts.out, {
        title: opts.title,
        plotsDir: opts.plots ? opts.plotsDir : false,
        png: opts.png,
      });
      process.stdout.write(`wrote ${result.html} (${result.plots.length} plots)\n`);
      const first = result.plots.find((p) => p.files)?.files;
      if (first) process.stdout.write(`plot files in ${first.svg.replace(/\/[^/]*$/, "")}\n`);
    });
}
