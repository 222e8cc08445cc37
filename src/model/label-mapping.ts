/**
 * Label mapping by name between a checkpoint's head and the labels of the data, as HF does: rows of
 * labels the checkpoint knows are kept under their names (in the checkpoint's order), new labels get
 * fresh rows, and growing the head is an explicit choice (ignoreMismatchedSizes).
 */
import { NerEngineError } from "../errors.js";

export interface LabelMapping {
  /** The model's labels in id order. */
  labels: string[];
  /** For each label, its row in the checkpoint's head, or -1 for a freshly initialised row. */
  rows: number[];
  kept: string[];
  initialised: string[];
  /** Why the head is (partly) new, when it is. */
  note?: string;
  /** Checkpoint tensors of another shape that kept their initialisation (ignoreMismatchedSizes): "name [a] vs [b]". */
  mismatched?: string[];
}

/**
 * `checkpointLabels`: the checkpoint head's labels in row order, or undefined when it has no usable head
 * (no classifier, or HF's LABEL_i placeholders). `dataLabels`: the labels the training data needs.
 */
export function mapLabelsByName(
  checkpointLabels: readonly string[] | undefined,
  dataLabels: readonly string[],
  opts: { ignoreMismatchedSizes: boolean; source: string },
): LabelMapping {
  if (!checkpointLabels) {
    return { labels: [...dataLabels], rows: dataLabels.map(() => -1), kept: [], initialised: [...dataLabels], note: "the checkpoint has no named token-classification head" };
  }
  const known = new Set(checkpointLabels);
  const added = dataLabels.filter((l) => !known.has(l));
  if (added.length === 0) {
    return { labels: [...checkpointLabels], rows: checkpointLabels.map((_, i) => i), kept: [...checkpointLabels], initialised: [] };
  }
  if (!opts.ignoreMismatchedSizes) {
    throw new NerEngineError(
      `the checkpoint's head has ${checkpointLabels.length} labels (${checkpointLabels.join(", ")}) and the data has ${added.length} it does not know ` +
        `(${added.join(", ")}): set ignoreMismatchedSizes (CLI --ignore-mismatched-sizes) to keep the known rows by name and initialise the new ones`,
      opts.source,
    );
  }
  return {
    labels: [...checkpointLabels, ...added],
    rows: [...checkpointLabels.map((_, i) => i), ...added.map(() => -1)],
    kept: [...checkpointLabels],
    initialised: added,
    note: `${added.length} label(s) new to the checkpoint`,
  };
}

/** One line for the training log. */
export function describeMapping(m: LabelMapping): string {
  const skipped = m.mismatched?.length ? `; kept at their initialisation, the checkpoint's shape differing: ${m.mismatched.join("; ")}` : "";
  if (m.kept.length === 0) return `head initialised for ${m.labels.length} labels (${m.note ?? "new head"})${skipped}`;
  const kept = `head rows kept by name for ${m.kept.length} labels (${m.kept.join(", ")})`;
  return (m.initialised.length ? `${kept}; initialised: ${m.initialised.map((l) => `${l} (row ${m.labels.indexOf(l)})`).join(", ")}` : kept) + skipped;
}
