// Builds the CRF micro-benchmark (native/bench/crf_bench.cpp, CMake option NER_BENCH) and runs it, then
// its checks: the gradient check (`crf_bench --gradcheck`) and pytorch-crf's numbers from
// ../shared/fixtures/crf.json (`crf_bench --fixture`, fed a text copy since the C++ side reads no JSON).
// Usage: node scripts/bench-crf.mjs [--no-checks]. Exits non-zero when a build or a check fails.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const buildDir = path.join(root, "build");

function run(cmd, args, { env = process.env, quiet = false } = {}) {
  const r = spawnSync(cmd, args, { cwd: root, env, encoding: "utf8", stdio: quiet ? "pipe" : "inherit" });
  return { ok: r.status === 0, output: `${r.stdout ?? ""}${r.stderr ?? ""}`, status: r.status ?? 1 };
}

function mustRun(cmd, args, opts) {
  const r = run(cmd, args, opts);
  if (!r.ok) {
    console.error(r.output + `bench-crf: \`${path.basename(cmd)} ${args.join(" ")}\` failed`);
    process.exit(r.status);
  }
  return r;
}

// 1. Build. The first time, the usual build (it picks the LibTorch and configures build/); after that only
// the bench target is built, so a benchmark does not recompile the addon.
if (!existsSync(path.join(buildDir, "CMakeCache.txt"))) {
  const extra = `${process.env.NER_CMAKE_ARGS ?? ""} -DNER_BENCH=ON`.trim();
  mustRun(process.execPath, [path.join(root, "scripts/build-native.mjs")], { env: { ...process.env, NER_CMAKE_ARGS: extra } });
}
mustRun("cmake", ["-DNER_BENCH=ON", buildDir], { quiet: true });
const jobs = process.env.CMAKE_BUILD_PARALLEL_LEVEL ?? "2";
mustRun("cmake", ["--build", buildDir, "--target", "crf_bench", "--parallel", jobs]);
const bin = [path.join(buildDir, "Release", "crf_bench"), path.join(buildDir, "crf_bench")].find(existsSync);
if (!bin) {
  console.error("bench-crf: crf_bench was not found under build/ after the build");
  process.exit(1);
}

// 2. Benchmark.
const cpus = os.cpus();
console.log(`machine: ${cpus[0]?.model ?? "unknown CPU"}, ${cpus.length} cores, ${os.platform()} ${os.release()}`);
mustRun(bin, []);
if (process.argv.includes("--no-checks")) process.exit(0);

// 3. Checks: print the full report only when something fails.
let failed = false;
function check(name, args) {
  const r = run(bin, args, { quiet: true });
  const lines = r.output.trim().split("\n");
  console.log(r.ok ? lines.at(-1) : `${name} FAILED:\n${r.output}`);
  failed ||= !r.ok;
}
check("gradcheck", ["--gradcheck"]);

// crf.json -> "B T K", then the arrays flattened row-major, then one "length tags..." line per Viterbi path.
const fixture = path.resolve(root, "..", "shared", "fixtures", "crf.json");
if (existsSync(fixture)) {
  const f = JSON.parse(readFileSync(fixture, "utf8"));
  const flat = (a) => [a].flat(Infinity).map(Number).join(" ");
  const text = [
    `${f.emissions.length} ${f.emissions[0].length} ${f.num_tags}`,
    ...["emissions", "mask", "tags", "transitions", "start_transitions", "end_transitions", "log_likelihood",
        "grad_emissions_of_sum_llh", "grad_transitions_of_sum_llh"].map((k) => flat(f[k])),
    ...f.viterbi.map((p) => `${p.length} ${p.join(" ")}`),
  ].join("\n");
  const dir = mkdtempSync(path.join(os.tmpdir(), "crf-fixture-"));
  writeFileSync(path.join(dir, "crf.txt"), `${text}\n`);
  check("fixture (pytorch-crf)", ["--fixture", path.join(dir, "crf.txt")]);
  rmSync(dir, { recursive: true, force: true });
} else {
  console.log(`fixture: skipped, ${fixture} not found`);
}
process.exit(failed ? 1 : 0);
