import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Native work already uses both cores; running files in parallel only thrashes.
    fileParallelism: false,
  },
});
