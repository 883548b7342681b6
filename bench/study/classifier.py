"""The study's significance classifier, trained the way LLMLingua-2 is: keep/drop labels per word.

Every word of the toy task is a whole word of the classifier's WordPiece vocabulary, so the
server's word grouping sees exactly the policy's words. Labels come from SFT traces: filler
phrases are drop (0), everything else keep (1). The directory it writes is an ordinary
transformers checkpoint that `sigreward serve --model DIR` loads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.study.task import BOS, PAD, VOCAB, TraceStyle, make_trace, random_problem

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
WORDS = tuple(w for w in VOCAB if w not in {PAD, BOS})


@dataclass(frozen=True)
class ClassifierConfig:
    steps: int = 600
    batch: int = 32
    lr: float = 3e-3
    seed: int = 0
    hidden: int = 32
    layers: int = 2


def build_tokenizer():  # -> transformers.PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate((*SPECIALS, *WORDS))}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=512,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def labelled_traces(n: int, seed: int, style: TraceStyle) -> list[tuple[list[str], list[int]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tokens, labels, _mode = make_trace(random_problem(rng), rng, style)
        out.append((tokens, labels))
    return out


def train_classifier(
    out_dir: Path,
    cfg: ClassifierConfig,
    traces: list[tuple[list[str], list[int]]],
    log=print,
) -> Path:
    """Train a 2-label BertForTokenClassification on `traces` and save it with its tokenizer."""
    from transformers import BertConfig, BertForTokenClassification

    tokenizer = build_tokenizer()
    torch.manual_seed(cfg.seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden,
        num_hidden_layers=cfg.layers,
        num_attention_heads=2,
        intermediate_size=2 * cfg.hidden,
        # The service feeds LLMLingua-2 windows of 512 positions.
        max_position_embeddings=512,
        num_labels=2,
        pad_token_id=tokenizer.pad_token_id,
        id2label={0: "drop", 1: "keep"},
        label2id={"drop": 0, "keep": 1},
    )
    model = BertForTokenClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    rng = random.Random(cfg.seed)
    model.train()
    for step in range(cfg.steps):
        batch = [traces[rng.randrange(len(traces))] for _ in range(cfg.batch)]
        ids, labels, mask = _encode(tokenizer, batch)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == cfg.steps - 1:
            log(f"classifier step {step}: loss {loss.item():.4f}")
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def _encode(tokenizer, batch: list[tuple[list[str], list[int]]]):
    width = max(len(t) for t, _ in batch) + 2
    ids = torch.full((len(batch), width), tokenizer.pad_token_id)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (tokens, keep) in enumerate(batch):
        row = tokenizer(" ".join(tokens))["input_ids"]
        # One token per word plus CLS and SEP: the vocabulary holds every word whole.
        assert len(row) == len(tokens) + 2, (tokens, row)
        ids[i, : len(row)] = torch.tensor(row)
        labels[i, 1 : 1 + len(keep)] = torch.tensor(keep)
        mask[i, : len(row)] = 1
    return ids, labels, mask


def word_accuracy(
    units: list[list[str]], values: list[list[float]], traces: list[tuple[list[str], list[int]]]
) -> float:
    """Share of words whose normalised value falls on the side of 0.5 their label names."""
    right = total = 0
    for words, vals, (tokens, keep) in zip(units, values, traces, strict=True):
        if words != tokens:
            raise ValueError(f"the server's words {words} differ from the trace {tokens}")
        right += sum(int(v >= 0.5) == k for v, k in zip(vals, keep, strict=True))
        total += len(keep)
    return right / max(1, total)


def num_params(model_dir: Path) -> int:
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(str(model_dir))
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def raw_word_accuracy(model_dir: Path, traces: list[tuple[list[str], list[int]]]) -> float:
    """Share of words whose keep probability (before any normalisation) is on their label's side."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForTokenClassification.from_pretrained(str(model_dir)).eval()
    right = total = 0
    for start in range(0, len(traces), 64):
        batch = traces[start : start + 64]
        ids, labels, mask = _encode(tokenizer, batch)
        keep = torch.softmax(model(input_ids=ids, attention_mask=mask).logits, dim=-1)[..., 1]
        valid = labels >= 0
        right += int(((keep >= 0.5).long() == labels)[valid].sum())
        total += int(valid.sum())
    return right / max(1, total)
