/**
 * Raw text → sub-tokens with character offsets, as HF's fast tokenizers give them
 * (`return_offsets_mapping`). `@huggingface/tokenizers` (pure JS) gives ids and tokens but no offsets, so
 * they are computed here, by HF's conventions: the text is split into words with their spans
 * (`pretokenize`, BERT's BasicTokenizer rules: the words BertPreTokenizer finds), each word is tokenized
 * alone (WordTokenizer.tokenizeWord, the ids training uses), and each piece gets the span of the original
 * characters behind it. The word's characters are normalized one at a time; a piece covers the next
 * normalized characters (its text without the "##" / "▁" marker, or its bytes for byte-level BPE) and spans
 * from the first to the last original character they came from. Characters the normalizer removes
 * (controls, accents it strips) belong to no piece unless they lie inside one; [UNK] spans its word.
 */
import { pretokenize, type PretokenizedWord } from "../data/alignment.js";
import type { WordTokenizer } from "./tokenizer.js";

export interface TextToken {
  id: number;
  /** The piece as the vocabulary spells it ("##ing", "[UNK]"). */
  token: string;
  /** UTF-16 span in the text: text.slice(start, end) is what the piece stands for. */
  start: number;
  end: number;
  /** Index of its word in `words`. */
  word: number;
}

export interface EncodedText {
  words: PretokenizedWord[];
  /** Sub-tokens of all words in text order, without special tokens. */
  tokens: TextToken[];
}

/** Sub-tokens of `text` with their UTF-16 spans. */
export function encodeText(tokenizer: WordTokenizer, text: string): EncodedText {
  const words = pretokenize(text);
  const tokens: TextToken[] = [];
  words.forEach((w, wi) => {
    const ids = tokenizer.tokenizeWord(w.word);
    if (ids.length === 0) return;
    const pieces = ids.map((id) => tokenizer.idToToken(id));
    const spans = pieceSpans(tokenizer, w, pieces, ids);
    ids.forEach((id, k) => tokens.push({ id, token: pieces[k], start: spans[k][0], end: spans[k][1], word: wi }));
  });
  return { words, tokens };
}

const utf8 = new TextEncoder();
const codePoints = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

function pieceSpans(tokenizer: WordTokenizer, w: PretokenizedWord, pieces: string[], ids: readonly number[]): [number, number][] {
  const style = tokenizer.pieceStyle;
  const prefix = tokenizer.continuingSubwordPrefix;
  // The normalized word as units (code points; bytes for byte-level BPE), each with its original span.
  const units: [number, number][] = [];
  for (let i = 0; i < w.word.length; ) {
    const ch = String.fromCodePoint(w.word.codePointAt(i)!);
    const normalized = tokenizer.normalize(ch).replace(/\s/gu, "");
    const n = style.kind === "bytes" ? utf8.encode(normalized).length : codePoints(normalized);
    for (let k = 0; k < n; k++) units.push([w.start + i, w.start + i + ch.length]);
    i += ch.length;
  }
  const lengths: (number | undefined)[] = pieces.map((p, k) => {
    if (ids[k] === tokenizer.unkId) return undefined;
    if (style.kind === "prefix") return codePoints(k > 0 && prefix && p.startsWith(prefix) ? p.slice(prefix.length) : p);
    // Byte-level: one character per byte; a leading Ġ / ▁ stands for the space before the word.
    return codePoints(p.startsWith(style.replacement) ? p.slice(style.replacement.length) : p);
  });
  // One unknown piece among others takes what they leave; [UNK] alone, or pieces that do not add up, span the word.
  const known = lengths.reduce<number>((sum, l) => sum + (l ?? 0), 0);
  if (pieces.length > 1 && known < units.length && lengths.filter((l) => l === undefined).length === 1) lengths[lengths.indexOf(undefined)] = units.length - known;
  if (lengths.includes(undefined) || (lengths as number[]).reduce((a, b) => a + b, 0) !== units.length) return pieces.map(() => [w.start, w.end]);
  let pos = 0;
  return (lengths as number[]).map((length) => {
    const span: [number, number] = length === 0 ? [units[pos]?.[0] ?? w.end, units[pos]?.[0] ?? w.end] : [units[pos][0], units[pos + length - 1][1]];
    pos += length;
    return span;
  });
}

/** UTF-16 index → code point index, for every index 0..text.length (what Python's str indices count). */
export function codePointIndex(text: string): Int32Array {
  const map = new Int32Array(text.length + 1);
  let cp = 0;
  for (let i = 0; i < text.length; i++) {
    map[i] = cp;
    const c = text.charCodeAt(i);
    // The low half of a surrogate pair is inside the same code point.
    if (!(c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00)) cp++;
  }
  map[text.length] = cp;
  return map;
}
