#!/usr/bin/env bash
# Run HERE (the dev machine) before scripts/gpu/run.sh: fills .gpu/ (ignored by git) with what the GPU
# machine lacks, and rebuilds dist/:
#   .gpu/node.xz              this machine's node (../shared/gpu/pack-node.sh)
#   .gpu/node_modules.tar.xz  the production dependencies only (cmake-js + node-api-headers + node-addon-api
#                             for the build, @huggingface/tokenizers + zod at run time); all of node_modules
#                             (~90 MB with vitest and TypeScript) would not fit the 64 MiB that may travel
#   .gpu/shared/              the slice of ../shared the checks and benchmarks read (../shared does not travel)
# Then call the device tool with carry [".gpu", "dist"] (see scripts/gpu/run.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash ../shared/gpu/pack-node.sh >/dev/null
npm run build:ts >/dev/null || echo "warning: tsc reported errors (dist/ was written all the same; check them)"
# Top-level package folders of the production dependency tree (nested node_modules come along inside them).
mapfile -t mods < <(npm ls --omit=dev --all --parseable 2>/dev/null | sed -n "s|^$PWD/||p" | grep '^node_modules/' |
  sed -E 's|^(node_modules/(@[^/]+/)?[^/]+).*|\1|' | sort -u)
tar -cJf .gpu/node_modules.tar.xz "${mods[@]}"
chmod -R u+w .gpu/shared 2>/dev/null || true  # copies of the read-only ../shared
rm -rf .gpu/shared
mkdir -p .gpu/shared/data/conll2003 .gpu/shared/tokenizers .gpu/shared/fixtures
cp ../shared/data/conll2003/train.txt ../shared/data/conll2003/test.txt .gpu/shared/data/conll2003/
cp -r ../shared/tokenizers/bert-base-uncased .gpu/shared/tokenizers/
cp -r ../shared/fixtures/tiny-bert-ner ../shared/fixtures/bert-forward.json ../shared/fixtures/bert-loss.json \
  ../shared/fixtures/crf.json .gpu/shared/fixtures/
chmod -R u+w .gpu/shared
echo "node_modules packed: ${#mods[@]} packages"
du -sh .gpu .gpu/* dist
echo 'next: the device tool, command "bash scripts/gpu/run.sh", carry [".gpu", "dist"], timeout_s 600'
