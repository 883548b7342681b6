"""Drive a values-mode run through the public API, as a trainer would."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from tests.support.server import ServerProcess


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def drive_run(
    server: ServerProcess,
    run_id: str,
    steps: int,
    config: Mapping[str, Any] | None = None,
    api_key: str | None = None,
    samples_per_step: int = 4,
    seed: int = 0,
    first_step: int = 0,
) -> dict[str, Any]:
    """PUT the run (values significance, given references), post ``steps`` steps of rewards,
    finish the last one, and return GET /v1/runs/{run_id}.

    Accuracy rises with the step and responses shrink, so the schedule goes dynamic after
    slope_start_step and the plots have shape; a fixed seed keeps it reproducible.
    """
    headers = auth_headers(api_key)
    body = {"significance": "values", "reference": "given", **(config or {})}
    status, answer = server.request("PUT", f"/v1/runs/{run_id}", body, headers=headers)
    assert status in (200, 201), (status, answer)
    rng = random.Random(seed)
    for step in range(first_step, first_step + steps):
        samples = []
        for i in range(samples_per_step):
            length = rng.randint(6, 30) - min(step // 10, 4)
            samples.append(
                {
                    "id": f"s{step}-{i}",
                    "prompt_id": f"p{i % 2}",
                    "significance": [rng.uniform(-2.0, 3.0) for _ in range(length)],
                    "correct": rng.random() < 0.25 + step / 120,
                    "reference": {"significance": [rng.uniform(-2.0, 3.0) for _ in range(24)]},
                }
            )
        status, answer = server.request(
            "POST",
            "/v1/rewards",
            {"run_id": run_id, "step": step, "samples": samples},
            headers=headers,
        )
        assert status == 200, (step, status, answer)
    last = first_step + steps - 1
    status, answer = server.request(
        "POST", f"/v1/runs/{run_id}/steps/{last}/finish", headers=headers
    )
    assert status == 200, (status, answer)
    status, run = server.request("GET", f"/v1/runs/{run_id}", headers=headers)
    assert status == 200, (status, run)
    return run
