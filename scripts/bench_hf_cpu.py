#!/usr/bin/env python3
"""The HuggingFace side of the CPU training benchmark: what `Trainer` runs for token classification on CPU.

A BERT-mini shape (4 layers / hidden 256 / 4 heads / FFN 1024, bert-base-uncased vocabulary) from random init
(`transformers.set_seed`), trained on CoNLL-2003 train with the loop `Trainer` runs, written by hand because
`Trainer` needs `accelerate`: AdamW (torch, lr 5e-5, betas 0.9/0.999, eps 1e-8, weight decay 0, Trainer's
decay / no-decay groups), linear schedule with no warmup over the run's steps, `model.train()`, forward,
backward, `clip_grad_norm_(1.0)`, step, scheduler step, zero_grad; batches from a DataLoader with
`DataCollatorForTokenClassification` (padding to the longest in the batch), `RandomSampler` (--order random)
or `LengthGroupedSampler` (--order grouped = group_by_length). Labels on the first sub-token of each word.
  softmax     BertForTokenClassification
  bilstm-crf  BertModel -> dropout -> BiLSTM (256 per direction) -> Linear -> pytorch-crf CRF over the first
              sub-token of each word (loss = -log-likelihood, mean); encoder lr 5e-5, head lr 1e-3
Each step is timed from fetching the batch (collation included) to after zero_grad; tokenisation is done
beforehand and reported apart. --infer times inference of a fresh model on test instead (eval, no_grad,
batch 64, file order; argmax or crf.decode).

  PYTHONPATH=$HF_BASELINE/src:$HF_BASELINE/site /usr/bin/python3 scripts/bench_hf_cpu.py \\
      [--variant softmax|bilstm-crf] [--order random|grouped] [--steps 100] [--warmup 10] [--batch-size 32] \\
      [--max-length 128] [--seed 1] [--threads T] [--infer] [--data PATH] [--infer-data PATH]

The kit (HF_BASELINE, e.g. ~/hf-baseline) is set up as $NER_SHARED/hf-baseline/README.md says. Prints one line
for people on stderr and one JSON object on stdout.
"""
import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

from bench_hf import read_conll  # the CoNLL reader of the GPU comparison (scripts/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NER_SHARED", ROOT.parent / "shared"))
if os.environ.get("HF_BASELINE"):
    kit = Path(os.environ["HF_BASELINE"]).expanduser()
    sys.path[:0] = [str(kit / "src"), str(kit / "site")]
try:
    import torch
    import transformers
    from torch import nn
    from torchcrf import CRF
    import transformers.models.bert as _bert
    if not hasattr(_bert, "BertTokenizerFast"):
        # without the Rust `tokenizers`, transformers.data.data_collator fails on `from ..models.bert import
        # BertTokenizerFast` (used only in an isinstance check of the whole-word-mask collator): a placeholder
        _bert.BertTokenizerFast = type("BertTokenizerFast", (), {})
    from transformers import (BertConfig, BertForTokenClassification, BertModel, BertTokenizer,
                              DataCollatorForTokenClassification, get_linear_schedule_with_warmup)
    from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS
    from transformers.trainer_pt_utils import LengthGroupedSampler, get_parameter_names
except ImportError as e:
    sys.exit(f"bench_hf_cpu: the HuggingFace kit is missing ({e}). Set it up as {SHARED / 'hf-baseline/README.md'} "
             f"says (MIRROR=... bash {SHARED / 'hf-baseline/setup.sh'} ~/hf-baseline), then run this script as "
             "PYTHONPATH=~/hf-baseline/src:~/hf-baseline/site /usr/bin/python3 scripts/bench_hf_cpu.py "
             "(or set HF_BASELINE=~/hf-baseline).")
def encode(tok, sentences, label_ids, max_length):
    """What tokenize_and_align_labels does with is_split_into_words + word_ids(): each word tokenised apart,
    truncated to max_length with [CLS]/[SEP], label on the first sub-token of each word, -100 elsewhere."""
    features = []
    for words, tags in sentences:
        ids, labels = [], []
        for word, tag in zip(words, tags):
            sub = tok.convert_tokens_to_ids(tok.tokenize(word))
            if sub:  # a word with no sub-tokens gets no label, as with word_ids()
                ids += sub
                labels += [label_ids.get(tag, 0)] + [-100] * (len(sub) - 1)
        ids, labels = ids[:max_length - 2], labels[:max_length - 2]
        ids = [tok.cls_token_id] + ids + [tok.sep_token_id]
        labels = [-100] + labels + [-100]
        features.append({"input_ids": ids, "token_type_ids": [0] * len(ids), "attention_mask": [1] * len(ids),
                         "labels": labels})
    return features


class BertBiLstmCrf(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.lstm = nn.LSTM(config.hidden_size, 256, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(512, config.num_labels)
        self.crf = CRF(config.num_labels, batch_first=True)

    def forward(self, input_ids, attention_mask, token_type_ids, labels, decode=False):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]
        emissions = self.classifier(self.lstm(self.dropout(h))[0])
        # first sub-tokens (labels != -100), gathered left-aligned into [B, W] with a mask
        starts = labels != -100
        counts = starts.sum(1)
        order = torch.sort((~starts).to(torch.int8), dim=1, stable=True).indices[:, :int(counts.max())]
        mask = torch.arange(order.shape[1])[None, :] < counts[:, None]
        emissions = emissions.gather(1, order[..., None].expand(-1, -1, emissions.shape[-1]))
        if decode:
            return self.crf.decode(emissions, mask)
        tags = labels.gather(1, order).masked_fill(~mask, 0)
        return -self.crf(emissions, tags, mask, reduction="mean")


def param_groups(model, named, lr):
    """Trainer.create_optimizer's groups (decay: not LayerNorm, not bias) at weight decay 0."""
    decay = {n for n in get_parameter_names(model, ALL_LAYERNORM_LAYERS) if "bias" not in n}
    return [{"params": [p for n, p in named if (n in decay) == d and p.requires_grad], "weight_decay": 0.0,
             "lr": lr} for d in (True, False)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", choices=["softmax", "bilstm-crf"], default="softmax")
    ap.add_argument("--order", choices=["random", "grouped"], default="random")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--eval-batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--infer", action="store_true")
    ap.add_argument("--data", default=str(SHARED / "data/conll2003/train.txt"))
    ap.add_argument("--infer-data", default=str(SHARED / "data/conll2003/test.txt"))
    ap.add_argument("--tokenizer", default=str(SHARED / "tokenizers/bert-base-uncased"))
    ap.add_argument("--cache", help="folder to keep the tokenised data in between runs (the slow tokenizer takes ~14 s)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    train = read_conll(a.data)
    labels = sorted({t for _, tags in train for t in tags})
    tok = BertTokenizer.from_pretrained(a.tokenizer)
    t = time.perf_counter()
    source = a.infer_data if a.infer else a.data
    cached = Path(a.cache) / f"{Path(source).name}.{a.max_length}.{len(labels)}.json" if a.cache else None
    if cached and cached.exists():
        features = json.loads(cached.read_text())
    else:
        features = encode(tok, read_conll(source) if a.infer else train, {l: i for i, l in enumerate(labels)},
                          a.max_length)
        if cached:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(features))
    tokenize_seconds = time.perf_counter() - t
    features = [f for f in features if any(l != -100 for l in f["labels"])]  # a CRF needs >= 1 word

    transformers.set_seed(a.seed)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=1024, max_position_embeddings=512, pad_token_id=tok.pad_token_id,
                        num_labels=len(labels))
    crf = a.variant == "bilstm-crf"
    model = BertBiLstmCrf(config) if crf else BertForTokenClassification(config)
    collate = DataCollatorForTokenClassification(tok)
    times, sentences, real, positions, loss = [], 0, 0, 0, None

    if a.infer:
        sampler, steps = "sequential (file order)", (len(features) + a.eval_batch_size - 1) // a.eval_batch_size
        loader = torch.utils.data.DataLoader(features, batch_size=a.eval_batch_size, shuffle=False,
                                             collate_fn=collate)
        model.eval()
        predictions = []
        with torch.no_grad():
            it, t = iter(loader), time.perf_counter()
            for batch in it:
                if crf:
                    predictions += model(**batch, decode=True)
                else:
                    lab = batch.pop("labels")
                    argmax = model(**batch).logits.argmax(-1)
                    predictions += [p[l != -100].tolist() for p, l in zip(argmax, lab)]
                sentences += len(batch["input_ids"])
                real += int(batch["attention_mask"].sum())
                positions += batch["input_ids"].numel()
                times.append(time.perf_counter() - t)
                t = time.perf_counter()
        assert len(predictions) == len(features)
    else:
        g = torch.Generator()
        g.manual_seed(a.seed)
        if a.order == "random":
            sampler, sampler_obj = "torch.utils.data.RandomSampler", torch.utils.data.RandomSampler(features, generator=g)
        else:
            sampler = "transformers.trainer_pt_utils.LengthGroupedSampler"
            sampler_obj = LengthGroupedSampler(a.batch_size, lengths=[len(f["input_ids"]) for f in features],
                                               generator=g)
        loader = torch.utils.data.DataLoader(features, batch_size=a.batch_size, sampler=sampler_obj,
                                             collate_fn=collate, drop_last=False, num_workers=0)
        named = list(model.named_parameters())
        if crf:
            groups = (param_groups(model, [(n, p) for n, p in named if n.startswith("bert.")], 5e-5)
                      + param_groups(model, [(n, p) for n, p in named if not n.startswith("bert.")], 1e-3))
        else:
            groups = param_groups(model, named, 5e-5)
        optimizer = torch.optim.AdamW(groups, lr=5e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        total = a.warmup + a.steps
        scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=0, num_training_steps=total)
        model.zero_grad()
        it, steps = iter(loader), a.steps
        for step in range(total):
            t = time.perf_counter()
            batch = next(it, None)
            if batch is None:  # next epoch: the sampler draws a new order
                it = iter(loader)
                batch = next(it)
            model.train()
            out = model(**batch)
            out = out if crf else out.loss
            out.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            model.zero_grad()  # as Trainer 4.32 calls it: on torch 1.13 that zeroes (set_to_none=False)
            dt = time.perf_counter() - t
            if step >= a.warmup:
                times.append(dt)
                sentences += len(batch["input_ids"])
                real += int(batch["attention_mask"].sum())
                positions += batch["input_ids"].numel()
                loss = out.item()

    seconds = sum(times)
    result = {"tool": "hf", "variant": a.variant, "order": "infer" if a.infer else a.order, "steps": steps,
              "warmup": 0 if a.infer else a.warmup, "batchSize": a.eval_batch_size if a.infer else a.batch_size,
              "maxLength": a.max_length, "sentences": sentences, "seconds": round(seconds, 4),
              "sentencesPerSecond": round(sentences / seconds, 2), "tokensPerSecond": round(real / seconds, 1),
              "padFraction": round(1 - real / positions, 4), "msPerStep": round(1000 * seconds / len(times), 2),
              "finalLoss": loss, "threads": torch.get_num_threads(),
              "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
              "torch": torch.__version__, "transformers": transformers.__version__,
              "tokenizeSeconds": round(tokenize_seconds, 2), "samplerImplementation": sampler}
    print(f"hf {a.variant} {result['order']}: {sentences} sentences in {seconds:.2f} s = "
          f"{result['sentencesPerSecond']} sent/s, {result['tokensPerSecond']} tok/s, pad {result['padFraction']}, "
          f"{result['msPerStep']} ms/step, loss {loss}, {result['threads']} threads, "
          f"peak RSS {result['peakRssBytes'] / 2**20:.0f} MiB, tokenise {tokenize_seconds:.1f} s ({sampler})",
          file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
