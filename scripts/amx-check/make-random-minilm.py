"""Writes model.safetensors of a BERT with all-MiniLM-L6-v2's shapes and random weights (the
real checkpoint's tensor names, seed 0) into DIR, which holds its config.json: for timing and
for comparing compute paths on a machine without the real checkpoint (scripts/amx-check).

    python3 make-random-minilm.py DIR
"""
import sys

import torch
from transformers import BertConfig, BertModel
from safetensors.torch import save_file
d = sys.argv[1]
cfg = BertConfig.from_pretrained(d)
torch.manual_seed(0)
m = BertModel(cfg)
sd = {k: v.detach().contiguous() for k, v in m.state_dict().items()}
sd["embeddings.position_ids"] = torch.arange(cfg.max_position_embeddings).unsqueeze(0)
save_file(sd, f"{d}/model.safetensors")
print("wrote", len(sd), "tensors")
