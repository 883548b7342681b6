"""The published LLMLingua-2 pipeline (PyPI `llmlingua` 0.2.2), driven as the paper's server does.

The baseline of every benchmark in bench/ and the oracle of the parity tests (tests/engine/
test_parity.py): nothing here re-implements the published code, it calls it. Install it with
`pip install --no-deps llmlingua==0.2.2` plus `nltk` and `tiktoken` (scripts/test does).

The paper's server calls `PromptCompressor.compress_prompt_llmlingua2([text], rate=0.6)` with
its defaults; the word probabilities its trainer reads are computed, per chunk, by the private
methods driven below (`__chunk_context`, `TokenClfDataset`, `__merge_token_to_word`,
`__token_prob_to_word_prob`), in the same order and with the same batching as `__compress`.
The compressor is built with `__new__` because its constructor downloads a tiktoken file and
loads the model by name; every attribute those methods read is set here instead.

Counting follows the paper's trainer: each chunk's word probabilities are min-max normalised
(all equal -> 1.0), and a word below the threshold is insignificant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

CHUNK_END_TOKENS = {".", "\n"}
MAX_BATCH_SIZE = 50  # llmlingua's default
PUBLISHED_NAMES = {
    "sentencepiece": "microsoft/llmlingua-2-xlm-roberta-large-meetingbank",
    "wordpiece": "microsoft/llmlingua-2-bert-base-multilingual-cased-meetingbank",
}


@dataclass(frozen=True)
class PublishedChunk:
    words: list[str]
    probs: list[float]  # keep probability of each word (mean over its tokens, float32 math)


@dataclass(frozen=True)
class PublishedCounts:
    significant: int
    insignificant: int
    ambiguous: int  # words whose normalised value is within `tolerance` of the threshold


class PublishedPipeline:
    """llmlingua 0.2.2's own code on a local checkpoint (its name decides the word rule)."""

    def __init__(self, model_dir: Path, family: str, device: str = "cpu") -> None:
        """`family`: "wordpiece" or "sentencepiece"; llmlingua picks its word rule from the
        model name, so the name of the published checkpoint of that family is set."""
        from llmlingua import PromptCompressor
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        pc = PromptCompressor.__new__(PromptCompressor)
        pc.model_name = PUBLISHED_NAMES[family]
        pc.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        pc.model = AutoModelForTokenClassification.from_pretrained(str(model_dir)).eval()
        pc.model.to(device)
        pc.device = device
        pc.max_seq_len = 512
        pc.max_batch_size = MAX_BATCH_SIZE
        pc.special_tokens = {
            v
            for k, v in pc.tokenizer.special_tokens_map.items()
            if k != "additional_special_tokens"
        }
        self._pc = pc

    def chunks(self, text: str) -> list[str]:
        return self._pc._PromptCompressor__chunk_context(text, chunk_end_tokens=CHUNK_END_TOKENS)

    def word_probs(self, text: str) -> list[PublishedChunk]:
        """Words and keep probabilities of every chunk of one text (one call per text)."""
        from llmlingua.utils import TokenClfDataset

        pc = self._pc
        dataset = TokenClfDataset(self.chunks(text), tokenizer=pc.tokenizer, max_len=pc.max_seq_len)
        loader = DataLoader(dataset, batch_size=pc.max_batch_size, shuffle=False, drop_last=False)
        out: list[PublishedChunk] = []
        with torch.no_grad():
            for batch in loader:
                ids = batch["ids"].to(pc.device, dtype=torch.long)
                mask = batch["mask"].to(pc.device, dtype=torch.long) == 1
                probs = F.softmax(pc.model(input_ids=ids, attention_mask=mask).logits, dim=-1)
                for j in range(ids.shape[0]):
                    active_probs = torch.masked_select(probs[j, :, 1], mask[j])
                    active_ids = torch.masked_select(ids[j], mask[j])
                    tokens = pc.tokenizer.convert_ids_to_tokens(active_ids.squeeze().tolist())
                    token_probs = [p for p in active_probs.cpu().numpy()]
                    words, valid, _ = pc._PromptCompressor__merge_token_to_word(
                        tokens=tokens,
                        token_probs=token_probs,
                        force_tokens=[],
                        token_map={},
                        force_reserve_digit=False,
                    )
                    word_probs = pc._PromptCompressor__token_prob_to_word_prob(
                        valid, convert_mode="mean"
                    )
                    out.append(PublishedChunk(list(words), [float(p) for p in word_probs]))
        return out

    def count(self, text: str, threshold: float) -> tuple[int, int]:
        """(significant, insignificant) words of one response, as the paper's trainer counts."""
        counted = count(self.word_probs(text), threshold, 0.0)
        return counted.significant, counted.insignificant


def normalised(probs: list[float]) -> list[float]:
    """Min-max over one chunk's words; every word gets 1.0 when they are all equal."""
    lo, hi = min(probs), max(probs)
    if hi == lo:
        return [1.0] * len(probs)
    return [(p - lo) / (hi - lo) for p in probs]


def count(chunks: list[PublishedChunk], threshold: float, tolerance: float) -> PublishedCounts:
    sig = ins = amb = 0
    for chunk in chunks:
        if not chunk.probs:  # the paper's trainer crashes here; the service counts nothing
            continue
        for v in normalised(chunk.probs):
            if v < threshold:
                ins += 1
            else:
                sig += 1
            amb += abs(v - threshold) <= tolerance
    return PublishedCounts(sig, ins, amb)


def bare_word(word: str) -> str:
    """A word's text without markers, comparable across both implementations (llmlingua strips
    every leading "#" of a WordPiece continuation, the service strips the "##" marker once)."""
    return word.replace("▁", "").replace("#", "")
