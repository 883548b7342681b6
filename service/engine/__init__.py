"""Significance of response texts (LLMLingua-2 token classifier) or client-supplied values."""

from sigreward.engine.engine import SignificanceEngine
from sigreward.engine.errors import ModelLoadError, NoModelError
from sigreward.engine.protocol import Engine

__all__ = ["Engine", "ModelLoadError", "NoModelError", "SignificanceEngine"]
