/**
 * Reading files that may be hostile: only regular files (a symlink to one is fine; to a device, a FIFO
 * or a folder is not), never more than a stated number of bytes, and with errors that name the file and
 * say what is wrong with it (missing, a folder, unreadable, a symlink loop, too big) without ever
 * quoting its contents. Every file this engine reads goes through readBoundedFile.
 */
import * as fs from "node:fs";
import { constants as bufferConstants } from "node:buffer";
import { NerEngineError } from "../errors.js";

const MiB = 1024 * 1024;

/**
 * Size limits, chosen far above any real file of the kind and far below what would hurt the process:
 *  - small JSON files (config.json, tokenizer_config.json, special_tokens_map.json, the index of a
 *    sharded checkpoint, run.json, trainer_state.json, an engine config file): a few KB to a few hundred
 *    KB in practice (a 10,000-label id2label is ~300 KB), so 8 MiB;
 *  - tokenizer files (tokenizer.json, vocab.txt, vocab.json, merges.txt, sentencepiece models): the
 *    largest encoder tokenizer.json files are ~17 MB (XLM-R's 250k-piece Unigram) and the largest of
 *    any HF model ~35 MB; loading one costs ~20x its size in JS objects, so 64 MiB (~1.5 GB at worst);
 *  - corpora and logs: V8 cannot hold a string longer than ~512 Mi characters, so a bigger file could
 *    never be read as text anyway; stopping at 500 MiB refuses it before anything is allocated;
 *  - safetensors: the largest buffer Node can allocate (4 GiB on Node 20); bigger models come sharded.
 */
export const LIMITS = {
  smallJson: 8 * MiB,
  tokenizer: 64 * MiB,
  text: 500 * MiB,
  safetensors: bufferConstants.MAX_LENGTH,
} as const;

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO (named pipe)";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}

/** What a failed fs call means, in words (no message text of the OS, which may vary). */
export function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "ENOENT":
      return "does not exist";
    case "ENOTDIR":
      return "does not exist (a part of the path is not a directory)";
    case "EACCES":
    case "EPERM":
      return "permission denied (the file or a folder on its path is not readable)";
    case "ELOOP":
      return "is a symlink loop (too many levels of symbolic links)";
    case "ENAMETOOLONG":
      return "path is too long";
    case "EISDIR":
      return "is a directory, expected a file";
    case "EMFILE":
    case "ENFILE":
      return "cannot be opened: too many open files";
    default:
      return `cannot be read (${code ?? "unknown error"})`;
  }
}

/**
 * Whether `file` exists. Absent (ENOENT/ENOTDIR) is false; anything else that stops us from knowing
 * (permission denied on the folder, a symlink loop, a dangling symlink) is an error naming the path, so
 * an unreadable folder is never reported as "config.json is missing".
 */
export function pathExists(file: string): boolean {
  try {
    fs.statSync(file);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      let link: fs.Stats | undefined;
      try {
        link = fs.lstatSync(file);
      } catch {
        return false;
      }
      if (link.isSymbolicLink()) throw new NerEngineError("is a symlink whose target does not exist", file);
      return false;
    }
    throw new NerEngineError(describeFsError(e), file);
  }
}

/** stat() of an existing path or a NerEngineError saying why not. */
export function statOrThrow(file: string, what = "path"): fs.Stats {
  try {
    return fs.statSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT" && isSymlink(file)) {
      throw new NerEngineError(`${what} is a symlink whose target does not exist`, file);
    }
    throw new NerEngineError(`${what} ${describeFsError(e)}`, file);
  }
}

function isSymlink(file: string): boolean {
  try {
    return fs.lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

export interface BoundedReadOptions {
  /** Most bytes accepted (see LIMITS). */
  maxBytes: number;
  /** What the file is, for messages ("config.json", "corpus file"); default "file". */
  what?: string;
  /** Message for a missing file; default `${what} does not exist`. */
  missing?: string;
  /** Looks at the first `head.bytes` bytes (and the size) before the rest is read, e.g. a format's header. */
  head?: { bytes: number; check: (head: Uint8Array, size: number) => void };
}

/**
 * The bytes of a regular file, at most `maxBytes` of them, checked before anything is read: the path
 * is stat()ed (symlinks followed) and anything but a regular file is refused without being opened (so a
 * FIFO cannot block and /dev/zero cannot fill memory); the open descriptor is checked again, against a
 * swap in between. The buffer is unpooled (byteOffset 0), so typed views into it stay aligned.
 */
export function readBoundedFile(file: string, opts: BoundedReadOptions): Buffer {
  const what = opts.what ?? "file";
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && isSymlink(file)) throw new NerEngineError(`${what} is a symlink whose target does not exist`, file);
    if (code === "ENOENT" && opts.missing) throw new NerEngineError(opts.missing, file);
    throw new NerEngineError(`${what} ${describeFsError(e)}`, file);
  }
  refuseIrregular(st, file, what);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (e) {
    throw new NerEngineError(`${what} ${describeFsError(e)}`, file);
  }
  try {
    const fst = fs.fstatSync(fd);
    refuseIrregular(fst, file, what);
    const size = fst.size;
    if (size > opts.maxBytes) {
      throw new NerEngineError(`${what} is ${size} bytes, more than the ${opts.maxBytes} bytes accepted for it: refusing to read it`, file);
    }
    const buf = Buffer.allocUnsafeSlow(size);
    let got = 0;
    const readMore = (upTo: number) => {
      while (got < upTo) {
        const n = readChunk(fd, buf, got, upTo - got, file, what);
        if (n === 0) break;
        got += n;
      }
    };
    if (opts.head) {
      readMore(Math.min(size, opts.head.bytes));
      opts.head.check(buf.subarray(0, got), size);
    }
    readMore(size);
    // A file that reads past its stat size (it grew, or it is a /proc file whose size reads as 0).
    if (got === size && readChunk(fd, Buffer.allocUnsafe(1), 0, 1, file, what) > 0) {
      throw new NerEngineError(`${what} changed size while being read (or reports a wrong size): refusing it`, file);
    }
    return got === size ? buf : buf.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

function readChunk(fd: number, buf: Buffer, offset: number, length: number, file: string, what: string): number {
  try {
    return fs.readSync(fd, buf, offset, Math.min(length, 64 * MiB), null);
  } catch (e) {
    throw new NerEngineError(`${what} ${describeFsError(e)}`, file);
  }
}

function refuseIrregular(st: fs.Stats, file: string, what: string): void {
  if (st.isFile()) return;
  if (st.isDirectory()) throw new NerEngineError(`${what} is a directory, expected a file`, file);
  const link = isSymlink(file) ? "a symlink to " : "";
  throw new NerEngineError(`${what} is ${link}${kindOf(st)}, not a regular file: only regular files are read`, file);
}

/**
 * A bounded file as text: strict UTF-8 (a leading byte-order mark is dropped); bad bytes are an error
 * naming the byte offset and line, never the bytes.
 */
export function readBoundedText(file: string, opts: BoundedReadOptions): string {
  return decodeUtf8(readBoundedFile(file, opts), file);
}

export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const offset = firstInvalidUtf8(bytes);
    let line = 1;
    for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
    throw new NerEngineError(`not valid UTF-8 (bad byte at offset ${offset})`, `${file}:${line}`);
  }
}

/** Byte offset of the first invalid UTF-8 sequence (only called once decoding has failed). */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    // Lead byte → sequence length and the allowed range of the second byte (rejects overlongs/surrogates).
    let len: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return i;
    if (i + len > b.length) return i;
    const second = b[i + 1]!;
    if (second < lo || second > hi) return i;
    for (let k = 2; k < len; k++) if ((b[i + k]! & 0xc0) !== 0x80) return i;
    i += len;
  }
  return b.length;
}
