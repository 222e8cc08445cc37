/**
 * Directory-atomic replacement: a checkpoint folder changes from the old model to the new one in one
 * step, so a process killed at any moment leaves a folder that loads as exactly one of them. The new
 * folder is written beside the old one, every file and the folder fsynced, then the two are exchanged
 * (Linux renameat2 RENAME_EXCHANGE, through the addon) and the old one removed. Where the filesystem
 * cannot exchange, the old folder is renamed aside first; a crash in that instant leaves no folder but
 * `<name>.old-*`, which readers name in their error (see previousVersions).
 */
import * as fs from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { NerEngineError } from "../errors.js";
import { native } from "./native.js";

/** Files of a model's weights and state: never carried over from the old folder. */
const MODEL_FILE = /^(config\.json|model.*\.safetensors|model\.safetensors\.index\.json|trainer_state\.(json|safetensors|pt)|run_config\.json)$/;
/** Tokenizer files: one set. Kept from the old folder only when the new one brings none (no mixing of two). */
const TOKENIZER_FILE = /^(tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|added_tokens\.json|vocab\.(txt|json)|merges\.txt|sentencepiece\.bpe\.model|spiece\.model)$/;

function fsyncPath(p: string): void {
  try {
    const fd = fs.openSync(p, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // fsync of a directory is unsupported on some platforms; the files themselves were synced.
  }
}

/** Writes `data` to a new file and fsyncs it (inside a folder that is not yet visible). */
export function writeNewFile(file: string, data: string | Uint8Array): void {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  const fd = fs.openSync(file, "wx");
  try {
    let written = 0;
    while (written < bytes.byteLength) written += fs.writeSync(fd, bytes, written, bytes.byteLength - written);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Replaces folder `dir` by what `fill(tmp)` writes into a fresh sibling folder. Files of the old folder
 * that are not the model's (a user's README, say; its tokenizer files when the new folder has none) are
 * carried over as hard links (copies where links are refused), so nothing a user had is lost.
 */
export function replaceDirectory(dir: string, fill: (tmp: string) => void): void {
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  const tmp = path.join(parent, `${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    fs.mkdirSync(parent, { recursive: true });
    fs.mkdirSync(tmp);
  } catch (e) {
    throw new NerEngineError(`cannot create a folder next to the checkpoint (${(e as Error).message})`, dir);
  }
  let exists = false;
  try {
    const stat = fs.lstatSync(target);
    if (!stat.isDirectory()) throw new NerEngineError("exists and is not a folder: refusing to replace it", dir);
    exists = true;
  } catch (e) {
    if (e instanceof NerEngineError) throw e;
  }
  try {
    fill(tmp);
    if (exists) carryOver(target, tmp);
    fsyncPath(tmp);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (e instanceof NerEngineError) throw e;
    throw new NerEngineError(`cannot write the checkpoint (${(e as Error).message})`, dir);
  }
  try {
    if (!exists) {
      fs.renameSync(tmp, target);
    } else {
      try {
        native().exchangePaths(tmp, target);
      } catch (e) {
        if (!["EINVAL", "ENOSYS"].includes((e as { code?: string }).code ?? "")) throw e;
        const aside = `${target}.old-${process.pid}-${randomBytes(4).toString("hex")}`;
        fs.renameSync(target, aside);
        fs.renameSync(tmp, target);
        fs.renameSync(aside, tmp);
      }
    }
    fsyncPath(parent);
  } catch (e) {
    throw new NerEngineError(`cannot put the new checkpoint in place (${(e as Error).message}); it is in ${tmp}`, dir);
  }
  fs.rmSync(tmp, { recursive: true, force: true });  // now the old folder
}

function carryOver(from: string, to: string): void {
  const newTokenizer = fs.readdirSync(to).some((name) => TOKENIZER_FILE.test(name));
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    if (!entry.isFile() || MODEL_FILE.test(entry.name) || (newTokenizer && TOKENIZER_FILE.test(entry.name))) continue;
    if (fs.existsSync(path.join(to, entry.name))) continue;
    const source = path.join(from, entry.name);
    try {
      fs.linkSync(source, path.join(to, entry.name));
    } catch {
      fs.copyFileSync(source, path.join(to, entry.name));
    }
  }
}

/** Folders a crashed replacement of `dir` may have left (`dir.old-*`, `dir.tmp-*`), newest first. */
export function previousVersions(dir: string): string[] {
  const target = path.resolve(dir);
  const base = path.basename(target);
  let names: string[];
  try {
    names = fs.readdirSync(path.dirname(target));
  } catch {
    return [];
  }
  return names
    .filter((n) => n.startsWith(`${base}.old-`) || n.startsWith(`${base}.tmp-`))
    .map((n) => path.join(path.dirname(target), n))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
}
