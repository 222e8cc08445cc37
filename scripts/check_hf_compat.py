"""Loads a model directory written by ner-engine with HuggingFace transformers and compares token ids and
logits with the engine's (expected.json from scripts/hf-compat.mjs). Exits 1 on a mismatch."""
import json
import sys

import torch
from transformers import AutoTokenizer, BertForTokenClassification

model_dir, expected_path = sys.argv[1], sys.argv[2]
expected = json.load(open(expected_path))
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = BertForTokenClassification.from_pretrained(model_dir).eval()

ok = True
for words, ours in zip(expected["sentences"], expected["inputIds"]):
    theirs = tokenizer(words, is_split_into_words=True)["input_ids"]
    if theirs != ours[: len(theirs)]:
        ok = False
        print("token ids differ:", words, theirs, ours[: len(theirs)])
with torch.no_grad():
    logits = model(input_ids=torch.tensor(expected["inputIds"]), attention_mask=torch.tensor(expected["attentionMask"])).logits
ours = torch.tensor(expected["logits"]).reshape(expected["dims"])
mask = torch.tensor(expected["attentionMask"]).bool()
diff = (logits - ours).abs()[mask].max().item()
print(f"{type(tokenizer).__name__} and BertForTokenClassification loaded {model_dir}; token ids {'equal' if ok else 'DIFFER'}; max |logits diff| on real tokens {diff:.2e}")
sys.exit(0 if ok and diff <= 1e-4 else 1)
