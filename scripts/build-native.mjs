// Builds the native addon with cmake-js against the first LibTorch found, in this order:
//   1. LIBTORCH_DIR (a libtorch folder) or Torch_DIR (its share/cmake/Torch);
//   2. the LibTorch inside an installed PyTorch (how the CUDA build is found on a GPU machine);
//   3. the system's (Debian libtorch-dev: /usr/lib/<triplet>/cmake/Torch).
// No download happens: headers come from node-api-headers (package.json "binary.napi_versions").
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const root = path.resolve(import.meta.dirname, "..");

function fromEnv() {
  if (process.env.Torch_DIR) return { prefix: process.env.Torch_DIR, how: "Torch_DIR" };
  if (process.env.LIBTORCH_DIR) return { prefix: process.env.LIBTORCH_DIR, how: "LIBTORCH_DIR" };
  return null;
}

function fromPython() {
  for (const py of [process.env.PYTHON, "python3", "python"].filter(Boolean)) {
    try {
      const out = execFileSync(py, ["-c", "import torch, torch.utils; print(torch.utils.cmake_prefix_path)"], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        timeout: 60_000,
      }).trim();
      if (out && existsSync(out)) return { prefix: out, how: `PyTorch (${py})` };
    } catch {
      // no torch for this interpreter: try the next source
    }
  }
  return null;
}

function fromSystem() {
  const candidates = ["/usr/lib/x86_64-linux-gnu/cmake/Torch", "/usr/lib/aarch64-linux-gnu/cmake/Torch", "/usr/lib/cmake/Torch", "/usr/local/share/cmake/Torch"];
  try {
    for (const d of readdirSync("/usr/lib")) candidates.push(path.join("/usr/lib", d, "cmake/Torch"));
  } catch {
    // no /usr/lib: nothing to add
  }
  const hit = candidates.find((c) => existsSync(path.join(c, "TorchConfig.cmake")));
  return hit ? { prefix: hit, how: "system LibTorch" } : null;
}

const torch = fromEnv() ?? fromPython() ?? fromSystem();
if (!torch) {
  console.error(
    [
      "ner-engine: no LibTorch found, so the native addon cannot be built. Give one of:",
      "  - LIBTORCH_DIR=/path/to/libtorch  (or Torch_DIR=/path/to/libtorch/share/cmake/Torch)",
      "  - a PyTorch installed for python3 (its LibTorch is used)",
      "  - Debian's LibTorch: `npm run setup` (apt-get install libtorch-dev), then `npm install` again",
    ].join("\n"),
  );
  process.exit(1);
}
console.log(`ner-engine: building against ${torch.how}: ${torch.prefix}`);

const cmakeJs = require.resolve("cmake-js/bin/cmake-js");
const extra = (process.env.NER_CMAKE_ARGS ?? "").split(/\s+/).filter(Boolean);
const args = [cmakeJs, "compile", "--directory", root, `--CDCMAKE_PREFIX_PATH=${torch.prefix}`, ...extra.map((a) => `--CD${a.replace(/^-D/, "")}`)];
if (process.env.NER_DEBUG_BUILD) args.push("--debug");
const jobs = process.env.CMAKE_BUILD_PARALLEL_LEVEL ?? "2";
const run = spawnSync(process.execPath, args, { stdio: "inherit", env: { ...process.env, CMAKE_BUILD_PARALLEL_LEVEL: jobs } });
process.exit(run.status ?? 1);
