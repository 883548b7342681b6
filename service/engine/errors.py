"""Engine errors with messages that name what was wrong."""

from __future__ import annotations


class ModelLoadError(RuntimeError):
    """The significance checkpoint at `path` cannot be loaded (or is not a 2-label classifier)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot load significance model {path!r}: {reason}")


class NoModelError(RuntimeError):
    """A text was sent for classifier significance but the engine was started without a model."""

    def __init__(self) -> None:
        super().__init__(
            "no significance model is loaded (start the service with a model to score texts; "
            "'values' mode works without one)"
        )
