/** Validation of raw forward() inputs: number[][] batches checked value by value, so errors name their position. */
import { NerEngineError } from "../errors.js";

export interface ForwardInput {
  inputIds: number[][];
  attentionMask: number[][];
  tokenTypeIds?: number[][];
}

/** The limits a forward batch is checked against (from config.json and the label set). */
export interface ForwardLimits {
  vocabSize: number;
  typeVocabSize: number;
  maxPositions: number;
  numLabels: number;
}

/** Validates number[][] inputs (every value, so errors name their position) and flattens them. */
export function forwardBatch(input: ForwardInput & { labels?: number[][] }, limits: ForwardLimits) {
  const { vocabSize, typeVocabSize, maxPositions, numLabels } = limits;
  const inputIds = rectangular(input.inputIds, "inputIds", undefined, undefined, { valid: (v) => v >= 0 && v < vocabSize, expected: `outside the vocabulary [0, ${vocabSize})` });
  const batchSize = input.inputIds.length;
  const length = input.inputIds[0].length;
  if (length > maxPositions) throw new NerEngineError(`inputIds: sequence length ${length} exceeds max_position_embeddings (${maxPositions})`);
  return {
    inputIds,
    attentionMask: rectangular(input.attentionMask, "attentionMask", batchSize, length, { valid: (v) => v === 0 || v === 1, expected: "not 0 or 1" }),
    tokenTypeIds: input.tokenTypeIds
      ? rectangular(input.tokenTypeIds, "tokenTypeIds", batchSize, length, { valid: (v) => v >= 0 && v < typeVocabSize, expected: `outside [0, type_vocab_size=${typeVocabSize})` })
      : undefined,
    labels: input.labels
      ? rectangular(input.labels, "labels", batchSize, length, { valid: (v) => v === -100 || (v >= 0 && v < numLabels), expected: `neither -100 nor a label id in [0, ${numLabels})` })
      : undefined,
    batchSize,
    length,
  };
}

/**
 * number[][] → flat Int32Array, checking the batch is non-empty and rectangular ([batchSize, length]
 * when given, i.e. the shape of inputIds) and every value is an integer that `range` accepts.
 */
function rectangular(
  rows: number[][],
  name: string,
  batchSize?: number,
  length?: number,
  range?: { valid: (v: number) => boolean; expected: string },
): Int32Array {
  if (!Array.isArray(rows) || rows.length === 0) throw new NerEngineError(`${name} is an empty batch (expected a non-empty array of rows)`);
  const width = length ?? (Array.isArray(rows[0]) ? rows[0].length : 0);
  if (width === 0) throw new NerEngineError(`${name}[0] is empty`);
  if (batchSize !== undefined && rows.length !== batchSize) throw new NerEngineError(`${name} has ${rows.length} rows, expected ${batchSize} (the shape of inputIds)`);
  const out = new Int32Array(rows.length * width);
  rows.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== width) {
      const problem = length === undefined ? "is ragged" : `does not have the shape of inputIds [${batchSize}, ${length}]`;
      throw new NerEngineError(`${name} ${problem}: row ${i} has ${Array.isArray(row) ? row.length : "no"} entries, expected ${width}`);
    }
    row.forEach((v, j) => {
      if (!Number.isInteger(v)) throw new NerEngineError(`${name}[${i}][${j}] is not an integer (got ${typeof v === "string" ? JSON.stringify(v) : String(v)})`);
      // Also keeps values that an Int32Array would wrap (2^32 + 5 -> 5) from passing as valid ones.
      if (range && !range.valid(v)) throw new NerEngineError(`${name}[${i}][${j}] = ${v} is ${range.expected}`);
      if (v < -(2 ** 31) || v >= 2 ** 31) throw new NerEngineError(`${name}[${i}][${j}] = ${v} does not fit a 32-bit integer`);
      out[i * width + j] = v;
    });
  });
  return out;
}
