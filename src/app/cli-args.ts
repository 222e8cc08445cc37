/**
 * The CLI's argument tables (util.parseArgs options) and usage texts, kept side by side so they are
 * edited together: test/cli.test.ts checks that every command's --help lists exactly its flags.
 */

export const COMMANDS = ["train", "evaluate", "predict", "serve", "print-config", "help"] as const;
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
  predict: { ...COMMON, device: str, model: str, text: str, input: str, output: str, format: str, aggregation: str, "batch-size": str },
  serve: { ...COMMON, device: str, model: str, host: str, port: str, "max-batch": str, "batch-window-ms": str, "max-queue": str },
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
  main: `Usage: ner-engine [train|evaluate|predict|serve|print-config] [options]
       ner-engine --version

  train         fine-tune a tagger (default command; with no --train, runs the built-in demo)
  evaluate      score a saved model on a labelled file
  predict       tag texts (a file or stdin, one per line) with a saved model, as JSON lines or CoNLL
  serve         HTTP server (HF Inference API shape) over a saved model
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

  Defaults: HF run_ner.py's when fine-tuning --model (lr 5e-5, 3 epochs, batch 32). From scratch (no
  --model) the encoder's lr is 1e-3 and the head's 3e-2: at 5e-5 a random encoder barely learns, and
  with the head at the encoder's lr it collapses to predicting O everywhere when entities are rare.
  --lr sets the encoder's; a --config file's head.learningRate the head's. From scratch --head crf
  learned most in one epoch (BENCHMARKS.md).
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
  predict: `Usage: ner-engine predict --model DIR [--text "..." | --input FILE] [options]

  Tags one text per input line (stdin without --text or --input) and writes one record per line, in
  order, as the lines are read: constant memory for any input size. A line that cannot be tagged (not
  UTF-8, over 1 MiB, refused) gets {"line", "text", "error"} and the rest go on. Offsets are Unicode
  code points (Python str indices). Progress goes to stderr when it is a terminal.

  --model DIR          the saved model
  --text "..."         one text to tag
  --input FILE         texts, one per line ("-": stdin)
  --output FILE        write there (default: stdout)
  --format F           jsonl: {"text", "entities": [{type, text, start, end, score}]} (default)
                       spacy: {"text", "ents": [[start, end, label], ...]}
                       conll: input lines are pre-split (tokens separated by whitespace); writes
                       "token TAG" lines, a blank line after each sentence
  --aggregation S      entities in HF pipeline shape: none | simple | first | average | max
                       (jsonl, spacy; spacy takes no "none")
  --batch-size N       lines per engine call (default 64)
  --device auto|cpu|cuda
${COMMON_USAGE}`,
  serve: `Usage: ner-engine serve --model DIR [--host 127.0.0.1] [--port 8080] [options]

  POST /predict {"inputs": "text" | ["text", ...], "parameters": {"aggregation_strategy": "simple"}}
  answers in the HF Inference API's token-classification shape; GET /health, GET /metadata,
  GET /openapi.json. Requests of concurrent clients are batched into one model call. SIGTERM or
  Ctrl-C stops taking requests and exits once those in flight are answered.

  --model DIR          the saved model
  --host H             address to listen on (default 127.0.0.1)
  --port N             port (default 8080; 0: any free port)
  --max-batch N        texts per model call (default 64; 1 turns batching across requests off)
  --batch-window-ms MS how long a batch waits for more texts (default 3)
  --max-queue N        texts that may wait; more get 503 (default 1024)
  --device auto|cpu|cuda
${COMMON_USAGE}`,
};
