"""Load a 2-label *ForTokenClassification checkpoint and its fast tokenizer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sigreward.engine.chunking import WINDOW_POSITIONS
from sigreward.engine.errors import ModelLoadError


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel (*ForTokenClassification), eval mode
    tokenizer: Any  # transformers fast tokenizer (has .backend_tokenizer)
    name: str


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _looks_local(name: str) -> bool:
    """A path (absolute, relative with ./, ~, existing, or deeper than a hub "org/name" id)."""
    if name.startswith(("/", ".", "~")) or Path(name).expanduser().exists():
        return True
    return name.count("/") > 1


def load_token_classifier(name: str, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    """Load `name` (a local directory or a hub id) or raise ModelLoadError naming it."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    local = _looks_local(name)
    if local and not Path(name).expanduser().is_dir():
        raise ModelLoadError(name, "no such directory")
    source = str(Path(name).expanduser()) if local else name
    offline = hub_offline()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
    except Exception as exc:  # transformers raises OSError/ValueError/... for bad checkpoints
        raise ModelLoadError(name, _reason("tokenizer", exc, local, offline)) from exc
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise ModelLoadError(name, "needs a fast (tokenizers-backed) tokenizer")
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            source, local_files_only=offline, dtype=dtype, attn_implementation="sdpa"
        )
    except Exception as exc:
        raise ModelLoadError(name, _reason("model", exc, local, offline)) from exc
    num_labels = int(getattr(model.config, "num_labels", 0))
    if num_labels != 2:
        raise ModelLoadError(
            name,
            f"expected a token classifier with 2 labels (0 = drop, 1 = keep), got {num_labels}",
        )
    positions = _usable_positions(model.config)
    if positions is not None and positions < WINDOW_POSITIONS:
        raise ModelLoadError(
            name,
            f"the model takes {positions} positions; LLMLingua-2 chunks need {WINDOW_POSITIONS}",
        )
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    return LoadedModel(model=model, tokenizer=tokenizer, name=name)


def _usable_positions(config: Any) -> int | None:
    n = getattr(config, "max_position_embeddings", None)
    if n is None:
        return None
    # RoBERTa-family positions start after the padding index.
    if getattr(config, "model_type", "") in {
        "roberta",
        "xlm-roberta",
        "xlm-roberta-xl",
        "camembert",
    }:
        n -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return int(n)


def _reason(what: str, exc: Exception, local: bool, offline: bool) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = ""
    if not local and offline:
        hint = " (HF_HUB_OFFLINE is set: only checkpoints already in the local cache load)"
    return f"{what} failed to load: {type(exc).__name__}: {first}{hint}"
