/**
 * The CLI's argument tables (util.parseArgs options) and usage texts, kept side by side so they are
 * edited together: test/cli.test.ts checks that every command's --help lists exactly its flags.
 */

export const COMMANDS = ["train", "evaluate", "predict", "print-config", "help"] as const;
export const DEVICES = ["auto", "cpu", "cuda"] as const;
export const SCHEMES = ["IOB1", "IOB2", "IOBES"] as const;

const str = { type: "string" } as const;
const bool = { type: "boolean" } as const;
const COMMON = { help: { ...bool, short: "h" }, verbose: bool } as const;

/** Flags that set configuration values: train's, and so print-config's, which shows their effect. */
const CONFIG_OPTIONS = {
  config: str, format: str, scheme: str, model: str, "ignore-mismatched-sizes": bool, tokenizer: str, head: str, out: str, device: str,
  epochs: str, "batch-size": str, lr: str, "max-length": str, seed: str, "max-steps": str, patience: str,
  bf16: bool, tf32: bool, "group-by-length": str, "label-all-subtokens": bool, "document-context": bool,
} as const;

export const OPTIONS = {
  train: { ...COMMON, ...CONFIG_OPTIONS, train: str, dev: str, test: str, "vocab-size": str, resume: str },
  "print-config": { ...COMMON, ...CONFIG_OPTIONS },
  evaluate: { ...COMMON, device: str, model: str, data: str, format: str, scheme: str, out: str },
  predict: { ...COMMON, device: str, model: str, text: str, input: str },
} as const;

const CONFIG_USAGE = `  --config FILE.json   configuration file; flags override its values (its keys: docs/config.md)
  --format F           conll | json | bio | atis (atis: a folder with train/dev/test)
  --scheme S           tag scheme of the files: IOB1 | IOB2 | IOBES
  --model DIR          checkpoint to fine-tune (HF layout: BERT, DistilBERT, RoBERTa, XLM-R); omit to
                       train from scratch. A head it already has keeps its rows by label name
  --ignore-mismatched-sizes
                       the data has labels the checkpoint's head lacks: keep the known rows, initialise the new
  --tokenizer DIR      tokenizer directory (default: --model)
  --head H             softmax | crf | bilstm-crf | bilstm-attn-crf
  --out DIR            run directory (model, metrics.json, log.jsonl, report.html)
  --epochs N  --batch-size N  --lr X  --max-length N  --seed N  --max-steps N  --patience N
  --device auto|cpu|cuda  --bf16  --tf32  --label-all-subtokens  --document-context
  --group-by-length G  on (default: length-sorted pools, shuffled) | hf (HF's megabatches) | off`;

const COMMON_USAGE = `  --verbose            full stack traces for unexpected errors
  -h, --help           this text`;

export const USAGE: Record<"main" | keyof typeof OPTIONS, string> = {
  main: `Usage: ner-engine [train|evaluate|predict|print-config] [options]
       ner-engine --version

  train         fine-tune a tagger (default command; with no --train, runs the built-in demo)
  evaluate      score a saved model on a labelled file
  predict       tag raw text with a saved model
  print-config  print the configuration train would use (defaults, --config file and flags), as JSON

Run "ner-engine <command> --help" for the options of a command.`,
  train: `Usage: ner-engine train [options]

  --train FILE         training data (omit to run the built-in demo)
  --dev FILE           development data (per-epoch evaluation, best model, early stopping)
  --test FILE          test data (evaluated at the end)
  --vocab-size N       from scratch without --model/--tokenizer: train a WordPiece vocabulary of N
                       tokens (default 8000) on --train, written to OUT/tokenizer
  --resume [RUN_DIR]   continue an interrupted run at the exact step it stopped (its data and
                       configuration come from RUN_DIR/run.json; default: --out, else the newest
                       runs/run-*). Only --device and --verbose may be given with it
${CONFIG_USAGE}
${COMMON_USAGE}`,
  "print-config": `Usage: ner-engine print-config [--config FILE.json] [options]

  Prints, as JSON, the configuration that train would use with the same options: the defaults,
  under the --config file, under the flags, with derived values filled in. What train decides
  when it runs stays unset: output without --out (train picks runs/run-<time>), and tokenizer
  from scratch without --model or --tokenizer (train trains a vocabulary into OUT/tokenizer).

${CONFIG_USAGE}
${COMMON_USAGE}`,
  evaluate: `Usage: ner-engine evaluate --model DIR --data FILE [options]

  Prints the entity-level report and the first 20 sentences with mistakes.

  --model DIR          the saved model
  --data FILE          labelled data
  --format F           conll | json | bio | atis (default conll)
  --scheme S           tag scheme of the file: IOB1 | IOB2 | IOBES (default IOB2)
  --out DIR            also write metrics.json and report.html there
  --device auto|cpu|cuda
${COMMON_USAGE}`,
  predict: `Usage: ner-engine predict --model DIR (--text "..." | --input FILE) [options]

  Prints one JSON line per input sentence: {"text", "entities": [{type, text, start, end, score}]}.

  --model DIR          the saved model
  --text "..."         one sentence to tag
  --input FILE         one sentence per line (empty lines are skipped)
  --device auto|cpu|cuda
${COMMON_USAGE}`,
};
