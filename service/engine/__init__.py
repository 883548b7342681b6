"""Significance of response texts (LLMLingua-2 token classifier) or client-supplied values."""

from service.engine.engine import SignificanceEngine
from service.engine.errors import ModelLoadError, NoModelError

__all__ = ["ModelLoadError", "NoModelError", "SignificanceEngine"]
