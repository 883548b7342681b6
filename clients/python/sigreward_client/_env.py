"""Client settings from environment variables, for trainers that load reward functions by path
(verl's ``custom_reward_function``) and so cannot be handed a client object."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from sigreward_client.client import AsyncRewardClient, RewardClient


@dataclass(frozen=True)
class EnvConfig:
    url: str
    run_id: str
    api_key: str | None
    timeout: float
    samples_per_step: int | None

    @classmethod
    def load(cls) -> EnvConfig:
        url = os.environ.get("SIGREWARD_URL")
        run_id = os.environ.get("SIGREWARD_RUN_ID")
        if not url or not run_id:
            raise RuntimeError(
                "set SIGREWARD_URL (e.g. http://127.0.0.1:8000) and SIGREWARD_RUN_ID for the "
                "sigreward reward function"
            )
        per_step = os.environ.get("SIGREWARD_SAMPLES_PER_STEP")
        try:
            samples_per_step = int(per_step) if per_step else None
            timeout = float(os.environ.get("SIGREWARD_TIMEOUT", "120"))
        except ValueError as err:
            raise RuntimeError(
                f"bad SIGREWARD_SAMPLES_PER_STEP / SIGREWARD_TIMEOUT: {err}"
            ) from err
        if samples_per_step is not None and samples_per_step < 1:
            raise RuntimeError("SIGREWARD_SAMPLES_PER_STEP must be >= 1")
        return cls(
            url, run_id, os.environ.get("SIGREWARD_API_KEY") or None, timeout, samples_per_step
        )


_lock = threading.Lock()
_clients: dict[tuple[str, str, str | None], RewardClient] = {}


def sync_client(config: EnvConfig, run_id: str | None = None) -> RewardClient:
    """One shared blocking client per (url, run, key) in this process (httpx is thread-safe)."""
    key = (config.url, run_id or config.run_id, config.api_key)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = RewardClient(key[0], key[1], api_key=key[2], timeout=config.timeout)
            _clients[key] = client
        return client


def async_client(config: EnvConfig, run_id: str | None = None) -> AsyncRewardClient:
    """A new async client (async clients are bound to the event loop that uses them)."""
    return AsyncRewardClient(
        config.url, run_id or config.run_id, api_key=config.api_key, timeout=config.timeout
    )


class StepCounter:
    """Client-side step from a running sample count: step = samples seen // samples_per_step.

    Only correct when this process sees every sample of the run, in step order, and nothing
    else (no validation samples, no restarts); see docs/integrations.md.
    """

    def __init__(self, samples_per_step: int, start: int = 0) -> None:
        self.samples_per_step = samples_per_step
        self._seen = start
        self._lock = threading.Lock()

    def take(self, n: int) -> int:
        with self._lock:
            step = self._seen // self.samples_per_step
            self._seen += n
            return step
