"""Schemathesis over the live server's OpenAPI schema: generated requests, valid and invalid,
never cause a 5xx, and every answer conforms to the schema (status codes, content types,
bodies; errors are the envelope). Uses schemathesis' Python API (its pytest plugin does not
support this pytest) with Hypothesis, 30 examples per operation and generation mode."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.server import ServerProcess

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 30


def _run_operation(operation: Any, mode: GenerationMode) -> None:
    checks = CHECKS + ([negative_data_rejection] if mode == GenerationMode.NEGATIVE else [])

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=checks, timeout=30)

    check()


def test_openapi_conformance(values_server: ServerProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{values_server.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {
        "PUT /v1/runs/{run_id}",
        "GET /v1/runs/{run_id}",
        "DELETE /v1/runs/{run_id}",
        "POST /v1/runs/{run_id}/steps/{step}/finish",
        "POST /v1/rewards",
        "POST /v1/significance",
        "GET /v1/info",
        "GET /livez",
        "GET /readyz",
    } <= labels, labels
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run_operation(operation, mode)
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # nothing to negate (no parameters)
            except Exception as exc:  # collect every operation's failure, then report all
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert not failures, "\n\n".join(failures)
