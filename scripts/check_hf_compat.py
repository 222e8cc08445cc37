"""Loads model directories written by ner-engine with HuggingFace transformers (AutoTokenizer,
AutoModelForTokenClassification) and compares token ids and logits with the engine's (the expected.json
written next to each by scripts/hf-compat.mjs). Arguments: MODEL_DIR EXPECTED_JSON pairs. Exits 1 on a
mismatch."""
import json
import sys

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

ok_all = True
args = sys.argv[1:]
for model_dir, expected_path in zip(args[0::2], args[1::2]):
    expected = json.load(open(expected_path))
    # The slow (Python) tokenizers: the reference, and all this kit has (no Rust tokenizers for Python here).
    tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=False)
    model = AutoModelForTokenClassification.from_pretrained(model_dir).eval()
    ok = True
    # This kit's transformers snapshot (4.32.0.dev0) re-adds RoBERTa's special tokens from tokenizer_config
    # as new ids (<s> -> 50265) even though vocab.json has them: then only the sub-tokens between the
    # specials are compared (the test suite checks whole ids against ../shared/fixtures/*-tokenize.json).
    specials_ok = tokenizer.cls_token_id == expected["inputIds"][0][0]
    if not specials_ok:
        print(f"note: {type(tokenizer).__name__} maps {tokenizer.cls_token} to {tokenizer.cls_token_id}, not the vocabulary's "
              f"{expected['inputIds'][0][0]} (this transformers snapshot); comparing the sub-tokens between the special tokens")
    for words, ours in zip(expected["sentences"], expected["inputIds"]):
        theirs = tokenizer(words, is_split_into_words=True)["input_ids"]
        ours = ours[: len(theirs)]
        if not specials_ok:
            theirs, ours = theirs[1:-1], ours[1:-1]
        if theirs != ours:
            ok = False
            print("token ids differ:", words, theirs, ours)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(expected["inputIds"]), attention_mask=torch.tensor(expected["attentionMask"])).logits
    ours = torch.tensor(expected["logits"]).reshape(expected["dims"])
    mask = torch.tensor(expected["attentionMask"]).bool()
    diff = (logits - ours).abs()[mask].max().item()
    ok = ok and diff <= 1e-4
    ok_all = ok_all and ok
    print(f"{expected['name']}: {type(tokenizer).__name__} + {type(model).__name__} loaded {model_dir}; "
          f"token ids {'equal' if ok else 'DIFFER'}; max |logits diff| on real tokens {diff:.2e}")
sys.exit(0 if ok_all else 1)
