"""The reference-style pipeline of method.md section 7, minus the per-request HTTP.

What a team gets from the paper's public code, on the same checkpoint: one response at a
time; tokenize, cut into LLMLingua-2 chunks, detokenize each chunk and tokenize it again,
pad every chunk to 512 positions, one fp32 forward per response over its chunks, keep
probabilities moved to the CPU, then Python loops over tokens to build words, average them,
min-max them per chunk and count. Nothing here is made slower than that description: the
forward runs under torch.inference_mode and the tokenizer is the fast one.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

MAX_SEQ_LEN = 512
CHUNK_END_TOKENS = (".", "\n")


class ReferencePipeline:
    def __init__(self, model_dir: str | Path, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForTokenClassification.from_pretrained(
            str(model_dir), dtype=torch.float32
        )
        self.model.to(self.device).eval()
        vocab = self.tokenizer.get_vocab()
        n_sp = sum(t.startswith("▁") for t in vocab)
        n_wp = sum(t.startswith("##") for t in vocab)
        self.sentencepiece = n_sp > n_wp
        self.marker = "▁" if self.sentencepiece else "##"
        self.special = set(self.tokenizer.all_special_tokens) - {self.tokenizer.unk_token}

    def _strip(self, token: str) -> str:
        return token[len(self.marker) :] if token.startswith(self.marker) else token

    def chunk_text(self, text: str) -> list[str]:
        """LLMLingua-2 chunking, returned as detokenized chunk strings."""
        max_len = MAX_SEQ_LEN - 2
        tokens = self.tokenizer.tokenize(text)
        chunks = []
        st = 0
        n = len(tokens)
        while n - st > max_len:
            ed = st + max_len
            for j in range(st + max_len - 1, st - 1, -1):
                if self._strip(tokens[j]) in CHUNK_END_TOKENS and tokens[j] not in self.special:
                    ed = j + 1
                    break
            chunks.append(self.tokenizer.convert_tokens_to_string(tokens[st:ed]))
            st = ed
        if st < n:
            chunks.append(self.tokenizer.convert_tokens_to_string(tokens[st:n]))
        return chunks

    def count(self, text: str, threshold: float) -> tuple[int, int]:
        """(significant, insignificant) words of one response."""
        chunks = self.chunk_text(text)
        if not chunks:
            return 0, 0
        enc = self.tokenizer(
            chunks,
            max_length=MAX_SEQ_LEN,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        )
        with torch.inference_mode():
            logits = self.model(
                input_ids=enc["input_ids"].to(self.device),
                attention_mask=enc["attention_mask"].to(self.device),
            ).logits
            probs = torch.softmax(logits, dim=-1)[..., 1].cpu()
        significant = insignificant = 0
        for c in range(len(chunks)):
            tokens = self.tokenizer.convert_ids_to_tokens(enc["input_ids"][c].tolist())
            keep = probs[c].tolist()
            words: list[list[float]] = []
            open_word = False
            for t, p in zip(tokens, keep, strict=True):
                if t in self.special:
                    open_word = False
                    continue
                starts = t.startswith("▁") if self.sentencepiece else not t.startswith("##")
                if starts or not open_word:
                    words.append([p])
                    open_word = True
                else:
                    words[-1].append(p)
            if not words:
                continue
            means = [sum(w) / len(w) for w in words]
            lo, hi = min(means), max(means)
            for m in means:
                v = (m - lo) / (hi - lo) if hi > lo else 1.0
                if v < threshold:
                    insignificant += 1
                else:
                    significant += 1
        return significant, insignificant
