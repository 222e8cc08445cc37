#!/usr/bin/env python3
"""The HuggingFace side of the GPU comparison (issue 5); scripts/bench-gpu.mjs is this engine's side.

For each shape (BERT-base: 12 layers / hidden 768 / 12 heads / FFN 3072; BERT-mini: 4 / 256 / 4 / 1024;
tiny: 2 / 64 / 2 / 128, for dry runs), randomly initialised from config with the bert-base-uncased
vocabulary, trains one epoch of CoNLL-2003 train with `Trainer` + `DataCollatorForTokenClassification`
(batch 32, max length 128, bf16, random order, no eval, no logging), labels on the first sub-token of each
word, in two variants:
  hf      BertForTokenClassification
  hf+crf  the same encoder + a CRF written as pytorch-crf writes it (a Python loop over the time steps for
          the forward algorithm, autograd for the backward) over the first sub-token of each word
and measures training wall time, sentences/s, real (non-pad) tokens/s, torch.cuda.max_memory_allocated,
and inference sentences/s on test (eval mode, bf16 autocast, batch 64, tokenisation included; hf+crf
decodes with pytorch-crf's Viterbi).

  python3 scripts/bench_hf.py [--shapes base,mini] [--variants hf,hf+crf] [--max-sentences N] [--json PATH]

Data: $NER_SHARED (default ../shared): data/conll2003/{train,test}.txt, tokenizers/bert-base-uncased.
"""
import argparse
import dataclasses
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {"base": (12, 768, 12, 3072), "mini": (4, 256, 4, 1024), "tiny": (2, 64, 2, 128)}
ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NER_SHARED", ROOT.parent / "shared"))
BATCH, EVAL_BATCH, MAX_LENGTH = 32, 64, 128


def read_conll(path, limit=None):
    """Sentences as (words, tags): token first, NER tag last; -DOCSTART- and blank lines separate."""
    sentences, words, tags = [], [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines() + [""]:
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if words:
                sentences.append((words, tags))
            words, tags = [], []
            continue
        words.append(cols[0])
        tags.append(cols[-1])
    return sentences[:limit] if limit else sentences


def gpu_name():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip() or None
    except Exception:
        return None


def crf_parts(torch, nn):
    """pytorch-crf 0.7's CRF (batch_first; loops over time steps as it does) and the first-sub-token gather."""

    class CRF(nn.Module):
        def __init__(self, num_tags):
            super().__init__()
            self.start_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
            self.end_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
            self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))

        def forward(self, emissions, tags, mask):  # per-sequence log-likelihood
            emissions, tags, mask = emissions.transpose(0, 1), tags.transpose(0, 1), mask.transpose(0, 1)
            return self._score(emissions, tags, mask) - self._normalizer(emissions, mask)

        def _score(self, emissions, tags, mask):
            seq_length, batch_size = tags.shape
            maskf = mask.type_as(emissions)
            ar = torch.arange(batch_size, device=tags.device)
            score = self.start_transitions[tags[0]] + emissions[0, ar, tags[0]]
            for i in range(1, seq_length):
                score = score + self.transitions[tags[i - 1], tags[i]] * maskf[i]
                score = score + emissions[i, ar, tags[i]] * maskf[i]
            last_tags = tags[mask.long().sum(dim=0) - 1, ar]
            return score + self.end_transitions[last_tags]

        def _normalizer(self, emissions, mask):
            score = self.start_transitions + emissions[0]
            for i in range(1, emissions.size(0)):
                next_score = torch.logsumexp(score.unsqueeze(2) + self.transitions + emissions[i].unsqueeze(1), dim=1)
                score = torch.where(mask[i].unsqueeze(1), next_score, score)
            return torch.logsumexp(score + self.end_transitions, dim=1)

        def decode(self, emissions, mask):  # pytorch-crf's _viterbi_decode, back-tracking with .item()
            emissions, mask = emissions.transpose(0, 1), mask.transpose(0, 1)
            score, history = self.start_transitions + emissions[0], []
            for i in range(1, emissions.size(0)):
                next_score, indices = (score.unsqueeze(2) + self.transitions + emissions[i].unsqueeze(1)).max(dim=1)
                score = torch.where(mask[i].unsqueeze(1), next_score, score)
                history.append(indices)
            score = score + self.end_transitions
            seq_ends = (mask.long().sum(dim=0) - 1).tolist()
            paths = []
            for b in range(score.size(0)):
                best = [score[b].argmax().item()]
                for hist in reversed(history[: seq_ends[b]]):
                    best.append(hist[b][best[-1]].item())
                paths.append(best[::-1])
            return paths

    def first_positions(selected):
        """[B, T] bool -> (positions [B, W] of the selected sub-tokens, left-aligned; mask [B, W])."""
        counts = selected.sum(dim=1)
        width = max(int(counts.max()), 1)
        order = torch.argsort((~selected).to(torch.int32), dim=1, stable=True)[:, :width]
        mask = torch.arange(width, device=selected.device)[None, :] < counts[:, None]
        mask[:, 0] = True  # pytorch-crf wants the first step on (an empty row scores tag 0 at [CLS])
        return order, mask

    return CRF, first_positions


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="base,mini")
    ap.add_argument("--variants", default="hf,hf+crf")
    ap.add_argument("--max-sentences", type=int, default=None, help="first N sentences of train (and of test)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--seed", type=int, default=42)
    opts = ap.parse_args()

    import torch
    import transformers
    from torch import nn
    from transformers import (AutoTokenizer, BertConfig, BertForTokenClassification, DataCollatorForTokenClassification,
                              Trainer, TrainingArguments, set_seed)
    from transformers.modeling_outputs import TokenClassifierOutput
    from transformers.models.bert.modeling_bert import BertModel, BertPreTrainedModel

    CRF, first_positions = crf_parts(torch, nn)

    class BertCrfForTokenClassification(BertPreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.bert = BertModel(config, add_pooling_layer=False)
            self.dropout = nn.Dropout(config.hidden_dropout_prob)
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
            self.crf = CRF(config.num_labels)
            self.post_init()

        def emissions(self, input_ids, attention_mask, token_type_ids, selected):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]
            logits = self.classifier(self.dropout(hidden)).float()  # the CRF runs in fp32
            order, mask = first_positions(selected)
            return logits.gather(1, order.unsqueeze(-1).expand(-1, -1, logits.size(-1))), order, mask

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None):
            emissions, order, mask = self.emissions(input_ids, attention_mask, token_type_ids, labels != -100)
            tags = labels.gather(1, order).masked_fill(~mask, 0).clamp_min(0)
            return TokenClassifierOutput(loss=-self.crf(emissions, tags, mask).mean(), logits=emissions)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32, as this engine's bench runs (training.tf32)
    try:  # transformers 5 keeps the Fast names as aliases; AutoTokenizer if that ever ends
        from transformers import BertTokenizerFast as Tokenizer
    except ImportError:
        Tokenizer = AutoTokenizer
    tok = Tokenizer.from_pretrained(str(SHARED / "tokenizers/bert-base-uncased"))
    assert tok.is_fast, "word_ids() needs a fast (tokenizers-backed) tokenizer"
    train = read_conll(SHARED / "data/conll2003/train.txt", opts.max_sentences)
    test = read_conll(SHARED / "data/conll2003/test.txt", opts.max_sentences)
    labels = sorted({t for _, tags in train for t in tags})
    label_id = {t: i for i, t in enumerate(labels)}

    t0 = time.perf_counter()
    enc = tok([w for w, _ in train], is_split_into_words=True, truncation=True, max_length=MAX_LENGTH)
    rows = []
    for i, (_, tags) in enumerate(train):
        previous, ids = None, []
        for wid in enc.word_ids(i):
            ids.append(-100 if wid is None or wid == previous else label_id[tags[wid]])
            previous = wid
        rows.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                     "token_type_ids": enc["token_type_ids"][i], "labels": ids})
    tokenize_seconds = time.perf_counter() - t0
    real_tokens = sum(len(r["input_ids"]) for r in rows)

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    wanted = dict(per_device_train_batch_size=BATCH, num_train_epochs=1, learning_rate=5e-5, bf16=device == "cuda",
                  logging_strategy="no", save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
                  seed=opts.seed, use_cpu=device == "cpu")
    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    dropped = sorted(k for k in wanted if k not in known)
    if dropped:
        print(f"note: this transformers has no TrainingArguments {dropped}; left out", flush=True)

    meta = {"tool": "hf", "gpu": gpu_name(), "device": device, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "command": " ".join([Path(sys.executable).name] + sys.argv),
            "config": {"batchSize": BATCH, "evalBatchSize": EVAL_BATCH, "maxLength": MAX_LENGTH, "bf16": device == "cuda",
                       "tf32": device == "cuda", "maxSentences": opts.max_sentences, "trainSentences": len(train),
                       "testSentences": len(test), "trainRealTokens": real_tokens, "tokenizeSeconds": tokenize_seconds},
            "results": []}

    def infer(model, crf):
        """Test sentences/s: tokenisation + forward (+ Viterbi for the CRF) + tags on the host."""
        model.eval()
        sync()
        t0 = time.perf_counter()
        words = [w for w, _ in test]
        n_tags = 0
        with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            for start in range(0, len(words), EVAL_BATCH):
                chunk = tok(words[start:start + EVAL_BATCH], is_split_into_words=True, truncation=True,
                            max_length=MAX_LENGTH, padding=True, return_tensors="pt")
                first = torch.zeros_like(chunk["input_ids"], dtype=torch.bool)
                for b in range(first.size(0)):
                    previous = None
                    for t, wid in enumerate(chunk.word_ids(b)):
                        first[b, t] = wid is not None and wid != previous
                        previous = wid
                batch = {k: v.to(device, non_blocking=True) for k, v in chunk.items()}
                if crf:
                    emissions, _, mask = model.emissions(batch["input_ids"], batch["attention_mask"],
                                                         batch["token_type_ids"], first.to(device))
                    n_tags += sum(len(p) for p in model.crf.decode(emissions, mask))
                else:
                    predicted = model(**batch).logits.argmax(-1).cpu()
                    n_tags += int(predicted[first].numel())
        sync()
        return len(test) / (time.perf_counter() - t0), n_tags

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for shape in opts.shapes.split(","):
        layers, hidden, heads, ffn = SHAPES[shape]
        for variant in opts.variants.split(","):
            set_seed(opts.seed)
            config = BertConfig(vocab_size=tok.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                                num_attention_heads=heads, intermediate_size=ffn, max_position_embeddings=512,
                                num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_id,
                                pad_token_id=tok.pad_token_id)
            crf = variant == "hf+crf"
            model = (BertCrfForTokenClassification if crf else BertForTokenClassification)(config)
            with tempfile.TemporaryDirectory() as out:
                args = TrainingArguments(output_dir=out, **{k: v for k, v in wanted.items() if k in known})
                trainer = Trainer(model=model, args=args, train_dataset=Rows(),
                                  data_collator=DataCollatorForTokenClassification(tok))
                sync()
                at_start = torch.cuda.memory_allocated() if device == "cuda" else None  # the weights, on the GPU already
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
                result = trainer.train()
                sync()
                seconds = time.perf_counter() - t0
            peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
            infer_rate, n_tags = infer(trainer.model, crf)
            row = {"shape": shape, "variant": variant, "layers": layers, "hidden": hidden, "heads": heads, "ffn": ffn,
                   "trainSeconds": seconds, "sentences": len(rows), "tokens": real_tokens,
                   "sentencesPerSecond": len(rows) / seconds, "tokensPerSecond": real_tokens / seconds,
                   "peakAllocatedBytes": peak, "allocatedAtStartBytes": at_start, "inferenceSentencesPerSecond": infer_rate, "inferenceWords": n_tags,
                   "finalLoss": result.training_loss, "optimizer": str(getattr(args.optim, "value", args.optim)),
                   "attention": getattr(model.config, "_attn_implementation", None)}
            meta["results"].append(row)
            print(f"{shape:5} {variant:7} train {seconds:7.1f} s  {row['sentencesPerSecond']:8.1f} sent/s "
                  f"{row['tokensPerSecond']:9.0f} tok/s  peak {f'{peak / 2**30:.2f}' if peak else 'n/a':>6} GiB  "
                  f"infer {infer_rate:8.1f} sent/s  loss {result.training_loss:.3f}  ({row['optimizer']}, {row['attention']})",
                  flush=True)
            if opts.json:  # after every run, so a run cut short still leaves its figures
                Path(opts.json).write_text(json.dumps(meta, indent=2))
            del trainer, model, result
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()

    print(f"\n{meta['gpu'] or device}; torch {torch.__version__}, transformers {transformers.__version__}; "
          f"{len(train)} train / {len(test)} test sentences, batch {BATCH}, max length {MAX_LENGTH}")


if __name__ == "__main__":
    main()
