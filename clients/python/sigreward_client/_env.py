"""Client settings from environment variables, for trainers that load reward functions by path
(verl's ``custom_reward_function``) and so cannot be handed a client object."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from sigreward_client import _defaults
from sigreward_client.client import AsyncRewardClient, RewardClient

log = logging.getLogger("sigreward_client")


@dataclass(frozen=True)
class EnvConfig:
    url: str
    run_id: str
    api_key: str | None
    timeout: float
    retry_budget: float

    @classmethod
    def load(cls) -> EnvConfig:
        try:
            config = cls(
                _defaults.base_url(None),
                _defaults.run_id(None),
                _defaults.api_key(None),
                _defaults.timeout(None),
                _defaults.retry_budget(None),
            )
        except ValueError as err:
            raise RuntimeError(f"sigreward reward function: {err}") from err
        if os.environ.get("SIGREWARD_SAMPLES_PER_STEP"):
            _warn_once(
                "SIGREWARD_SAMPLES_PER_STEP is no longer read: the server counts steps from the "
                "run option samples_per_step (PUT /v1/runs/<id>), see docs/integrations.md"
            )
        return config


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("sigreward: %s", message)


_lock = threading.Lock()
_clients: dict[tuple[str, str, str | None], RewardClient] = {}


def sync_client(config: EnvConfig, run_id: str | None = None) -> RewardClient:
    """One shared blocking client per (url, run, key) in this process (httpx is thread-safe)."""
    key = (config.url, run_id or config.run_id, config.api_key)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = RewardClient(
                key[0],
                key[1],
                api_key=key[2] or "",
                timeout=config.timeout,
                retry_budget=config.retry_budget,
            )
            _clients[key] = client
        return client


def async_client(config: EnvConfig, run_id: str | None = None) -> AsyncRewardClient:
    """A new async client (async clients are bound to the event loop that uses them)."""
    return AsyncRewardClient(
        config.url,
        run_id or config.run_id,
        api_key=config.api_key or "",
        timeout=config.timeout,
        retry_budget=config.retry_budget,
    )
