"""Significance of response texts (LLMLingua-2 token classifier) or client-supplied values."""

from sigreward.engine.engine import SignificanceEngine
from sigreward.engine.errors import ModelLoadError, NoModelError

__all__ = ["ModelLoadError", "NoModelError", "SignificanceEngine"]
