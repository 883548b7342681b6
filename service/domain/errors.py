"""What the run domain refuses, each naming the field a client must change.

The API maps them to statuses (service/api/deps.py): RunNotFound 404, RunConflict 409,
TooLarge 413, every other RequestError 422."""

from __future__ import annotations


class RunNotFound(LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} does not exist")
        self.run_id = run_id


class RunConflict(Exception):
    """PUT of an existing run with different values for the listed fields."""

    def __init__(self, run_id: str, fields: list[str]) -> None:
        super().__init__(
            f"run {run_id!r} exists with a different configuration: {', '.join(fields)}"
        )
        self.run_id = run_id
        self.fields = fields


class RequestError(ValueError):
    """A request the run cannot take; ``param`` names the offending field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


class SampleError(RequestError):
    """A sample lacks what its run's modes need; names the sample index and field."""

    def __init__(self, index: int | None, field: str, message: str) -> None:
        # index None: the error concerns the samples list itself (e.g. it is empty).
        super().__init__("samples" if index is None else f"samples[{index}].{field}", message)


class TooLarge(RequestError):
    """More items, or longer ones, than the server accepts in one request."""


class StepTooFar(RequestError):
    """A step more than the run's ``max_step_jump`` past the highest step it has seen.

    Without the bound, one request for a huge step would make every later real step late."""

    def __init__(self, run_id: str, step: int, highest: int, jump: int) -> None:
        super().__init__(
            "step",
            f"{step} is more than max_step_jump = {jump} steps past the highest step "
            f"run {run_id!r} has seen ({highest}); raise the run option max_step_jump "
            f"(PUT /v1/runs/{run_id}) to allow it",
        )
