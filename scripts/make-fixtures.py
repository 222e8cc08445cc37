"""Writes the small HF-parity fixtures committed under test/fixtures/ (see test/fixtures/README.md).

Usage (HF baseline kit, see ../shared/hf-baseline/README.md):
    PYTHONPATH=$HF_BASELINE/src:$HF_BASELINE/site /usr/bin/python3 scripts/make-fixtures.py OUT_DIR

It mirrors the layout of ../shared/fixtures (same file names, same JSON keys), so the same test code reads
either folder, but everything is small:
  tiny-bert-ner/      a seeded random BertForTokenClassification (hidden 32, 2 layers, 4 heads, intermediate 64,
                      128 positions, 9 CoNLL labels) over a WordPiece vocabulary of a few hundred tokens written
                      here from the words of SENTENCES; save_pretrained(safe_serialization=True) + BertTokenizer
                      (slow) files. No tokenizer.json: the kit has no fast tokenizers (the engine reads vocab.txt).
  tiny-bert-ner-bin/  the same model saved as pytorch_model.bin (for loaders that must refuse the pickle)
  bert-forward.json   a padded batch (one sentence pair, so token types 0 and 1) and HF's eval-mode
                      last_hidden_state and logits, flattened row-major, with their shapes
  bert-loss.json      labels for that batch (-100 = ignored) and HF's eval-mode token-classification loss
  crf.json            pytorch-crf numbers (log-likelihood, its gradients, Viterbi) on a [4, 6, 9] case
  metrics.json        60 random gold/pred tag sequences with IOB errors, token accuracy and seqeval's
                      classification_report (default; strict IOB2). No conlleval_output: the conlleval Perl
                      script is not in the kit.
Deterministic: fixed seeds, CPU, fp32, one thread. The BERT outputs are rounded to 6 decimals like ../shared's; the
CRF numbers are float32 values written in full.
"""
import json
import os
import random
import sys
import types

import torch
import transformers  # before the stub below: transformers probes for sklearn itself
from torchcrf import CRF
from transformers import BertConfig, BertForTokenClassification, BertTokenizer

# seqeval imports one warning class from scikit-learn, which the kit does not have; nothing else of it is used.
try:
    import sklearn.exceptions  # noqa: F401
except ImportError:
    sklearn = types.ModuleType("sklearn")
    sklearn.exceptions = types.ModuleType("sklearn.exceptions")

    class UndefinedMetricWarning(UserWarning):
        pass

    sklearn.exceptions.UndefinedMetricWarning = UndefinedMetricWarning
    sys.modules["sklearn"] = sklearn
    sys.modules["sklearn.exceptions"] = sklearn.exceptions

from seqeval.metrics import accuracy_score, classification_report  # noqa: E402
from seqeval.scheme import IOB2  # noqa: E402

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Written for these fixtures (no corpus text). Their words, lowercased, make the vocabulary, except HELD_OUT,
# which only exist as pieces so that some words split into several sub-tokens.
SENTENCES = [
    "Peter Blackburn met officials of the European Commission in Brussels on Monday.",
    "German farmers said British lamb was safe to eat, a spokesman told reporters.",
    "Maria Schmidt will visit New York and Boston next week for talks with Acme Corp.",
    "The United Nations called for new talks between the two sides in Geneva.",
    "Shares of Northwind Traders rose 3.5 percent in early trading in London on Friday.",
    "Rain stopped play on the second day of the cricket match in Leeds.",
    "Japan beat China 2-1 in the final of the Asian Cup on Sunday night.",
    "Prime Minister Anna Lindqvist flew to Paris for a summit of European leaders.",
    "A spokeswoman for the World Health Organisation declined to comment on the report.",
    "Police in Madrid arrested two men after a robbery at a bank near the station.",
    "The Dutch champions Ajax Amsterdam signed the Brazilian striker for three years.",
    "Oil prices fell in New York as traders waited for the OPEC meeting in Vienna.",
    "Heavy snow closed roads across northern Scotland and several schools stayed shut.",
    "The Chicago Bulls won their fourth game in a row, with Michael Jordan scoring 31 points.",
    "Officials from Toyota and Honda will meet union leaders in Tokyo on Tuesday.",
    "Swiss voters rejected the plan to join the European Economic Area in December.",
    "The Reuters correspondent in Cairo said the Egyptian government had denied the claims.",
    "Hospital staff in Dublin went on strike over pay and working hours.",
]
HELD_OUT = {"blackburn", "lindqvist", "northwind", "spokeswoman", "amsterdam", "brazilian", "organisation"}
PIECES = ["black", "lind", "north", "spokes", "amster", "brazil", "organis"]
SUFFIXES = ["##shire", "##day", "##s", "##ed", "##ing", "##er", "##ers", "##ly", "##burn", "##wind", "##qvist", "##ian", "##ation", "##dam", "##woman"]


def r6(x):
    return round(float(x), 6)


def flat(t):
    return [r6(v) for v in t.reshape(-1).tolist()]


def build_vocab(basic):
    words = []
    for s in SENTENCES:
        for w in basic.tokenize(s):
            if w not in words and w not in HELD_OUT:
                words.append(w)
    chars = sorted({c for s in SENTENCES for c in s.lower() if not c.isspace()} | set("abcdefghijklmnopqrstuvwxyz0123456789"))
    vocab = list(SPECIALS)
    for tok in chars + ["##" + c for c in chars if c.isalnum()] + PIECES + SUFFIXES + words:
        if tok not in vocab:
            vocab.append(tok)
    return vocab


def init_weights(model, gen):
    """Spreads the weights well beyond HF's std-0.02 init, so outputs are far from uniform and errors show."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("LayerNorm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            elif "embeddings" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=gen))


def make_bert(out):
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(1234)
    vocab_dir = os.path.join(out, "tiny-bert-ner")
    os.makedirs(vocab_dir, exist_ok=True)
    basic = transformers.models.bert.tokenization_bert.BasicTokenizer(do_lower_case=True)
    vocab = build_vocab(basic)
    vocab_file = os.path.join(vocab_dir, "vocab.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in vocab))
    tokenizer = BertTokenizer(vocab_file, do_lower_case=True, model_max_length=128)

    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=128, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12, pad_token_id=0,
        id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)},
    )
    config.architectures = ["BertForTokenClassification"]
    model = BertForTokenClassification(config)
    init_weights(model, gen)
    model.eval()
    model.save_pretrained(vocab_dir, safe_serialization=True)
    tokenizer.save_pretrained(vocab_dir)
    bin_dir = os.path.join(out, "tiny-bert-ner-bin")
    model.save_pretrained(bin_dir, safe_serialization=False)
    tokenizer.save_pretrained(bin_dir)

    # A padded batch: a sentence pair (token types 0 and 1), a mid-length sentence, a short one.
    pair = tokenizer("Peter Blackburnshire met Lindqvist", "in Brussels today")
    rows = [pair["input_ids"], tokenizer("Maria Schmidt visited Boston .")["input_ids"], tokenizer("Rain")["input_ids"]]
    types_ = [pair["token_type_ids"], [0] * len(rows[1]), [0] * len(rows[2])]
    T = max(map(len, rows))
    input_ids = [r + [0] * (T - len(r)) for r in rows]
    attention_mask = [[1] * len(r) + [0] * (T - len(r)) for r in rows]
    token_type_ids = [t + [0] * (T - len(t)) for t in types_]

    # Reload from the saved folder, as a user would, and check it is the same model.
    reloaded = BertForTokenClassification.from_pretrained(vocab_dir).eval()
    ids, mask, tt = torch.tensor(input_ids), torch.tensor(attention_mask), torch.tensor(token_type_ids)
    with torch.no_grad():
        out_a = model(input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True)
        out_b = reloaded(input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True)
    assert torch.equal(out_a.logits, out_b.logits), "reloaded model differs"
    hidden = out_b.hidden_states[-1]
    forward = {
        "model_dir": "tiny-bert-ner",
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
        "tokens": [tokenizer.convert_ids_to_tokens(r) for r in input_ids],
        "shape_last_hidden_state": list(hidden.shape),
        "last_hidden_state": flat(hidden),
        "shape_logits": list(out_b.logits.shape),
        "logits": flat(out_b.logits),
        "note": "positions where attention_mask is 0 are not meaningful; compare masked positions only",
    }
    rng = random.Random(99)
    specials = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id}
    labels = [[-100 if tok in specials else rng.randrange(len(LABELS)) for tok in row] for row in input_ids]
    with torch.no_grad():
        loss = reloaded(input_ids=ids, attention_mask=mask, token_type_ids=tt, labels=torch.tensor(labels)).loss
    return forward, {"labels": labels, "loss": float(loss)}


def make_crf():
    torch.manual_seed(5678)
    B, T, K = 4, 6, len(LABELS)
    crf = CRF(K, batch_first=True)
    with torch.no_grad():
        crf.transitions.copy_(0.5 * torch.randn(K, K))
        crf.start_transitions.copy_(0.7 * torch.randn(K))
        crf.end_transitions.copy_(0.3 * torch.randn(K))
    lengths = [6, 3, 1, 5]
    mask = torch.tensor([[1] * n + [0] * (T - n) for n in lengths], dtype=torch.uint8)
    emissions = (1.5 * torch.randn(B, T, K)).requires_grad_(True)
    tags = torch.randint(0, K, (B, T)) * mask.long()
    llh = crf(emissions, tags, mask=mask.bool(), reduction="none")
    llh.sum().backward()
    viterbi = crf.decode(emissions.detach(), mask=mask.bool())
    return {
        "num_tags": K,
        "emissions": emissions.detach().tolist(),
        "mask": mask.tolist(),
        "tags": tags.tolist(),
        "transitions": crf.transitions.detach().tolist(),
        "start_transitions": crf.start_transitions.detach().tolist(),
        "end_transitions": crf.end_transitions.detach().tolist(),
        "log_likelihood": llh.detach().tolist(),
        "grad_emissions_of_sum_llh": emissions.grad.tolist(),
        "grad_transitions_of_sum_llh": crf.transitions.grad.tolist(),
        "viterbi": viterbi,
    }


def make_metrics():
    rng = random.Random(2468)
    types_ = ["PER", "ORG", "LOC", "MISC"]
    gold, pred = [], []
    for _ in range(60):
        n = rng.randint(1, 14)
        g = []
        for i in range(n):
            u = rng.random()
            if u < 0.5:
                g.append("O")
            elif u < 0.8:
                g.append("B-" + rng.choice(types_))
            elif u < 0.92 and g and g[-1] != "O":
                g.append("I-" + g[-1][2:])  # a well-formed continuation
            else:
                g.append("I-" + rng.choice(types_))  # I- after O or of another type: an IOB error
        p = []
        for tag in g:
            u = rng.random()
            if u < 0.72:
                p.append(tag)
            elif u < 0.82:
                p.append("O")
            elif u < 0.92:
                p.append(rng.choice("BI") + "-" + rng.choice(types_))
            else:
                p.append(tag if tag == "O" else ("I-" if tag[0] == "B" else "B-") + tag[2:])  # flipped prefix
        gold.append(g)
        pred.append(p)

    def report(**kw):
        r = classification_report(gold, pred, output_dict=True, **kw)
        return {k: {m: float(v) for m, v in s.items()} for k, s in r.items()}

    return {
        "gold": gold,
        "pred": pred,
        "token_accuracy": float(accuracy_score(gold, pred)),
        "seqeval_default": report(),
        "seqeval_strict_iob2": report(mode="strict", scheme=IOB2),
        "note": "no conlleval_output: the conlleval Perl script is not in the HF baseline kit",
    }


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)

    def dump(name, obj):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, separators=(",", ":"))
            f.write("\n")

    forward, loss = make_bert(out)
    dump("bert-forward.json", forward)
    dump("bert-loss.json", loss)
    dump("crf.json", make_crf())
    dump("metrics.json", make_metrics())
    print(f"wrote {out}: transformers {transformers.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
