"""One typed configuration for the whole server, read from flags and SIGREWARD_* variables.

Each field's description is its ``sigreward serve --help`` text (service/cli.py builds the
flags from these fields); ``json_schema_extra`` carries what a flag needs beyond the type:
``flag`` (its name, where it is not the field's) and ``choices``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOG_LEVELS = ["debug", "info", "warning", "error"]


class Settings(BaseSettings):
    """Server settings. Every field can be set as SIGREWARD_<NAME> or as a CLI flag."""

    model_config = SettingsConfigDict(
        env_prefix="SIGREWARD_", extra="ignore", env_ignore_empty=True
    )

    host: str = Field(default="127.0.0.1", description="bind address")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port")
    data_dir: Path = Field(default=Path("./data"), description="directory of the SQLite store")
    model: str | None = Field(
        default=None, description="LLMLingua-2 style checkpoint: local directory or hub id"
    )
    database_url: str | None = Field(
        default=None, description="postgresql://... to share runs between replicas"
    )
    # NoDecode: the validator below reads the variable (a JSON list or comma-separated).
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="accepted bearer token (repeatable; also SIGREWARD_API_KEYS, "
        "comma-separated or a JSON list)",
        json_schema_extra={"flag": "--api-key"},
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1,
        description="largest request body in bytes; larger ones get 413",
    )
    max_batch_tokens: int = Field(
        default=16_384, ge=1, description="token budget of one model batch, in padded positions"
    )
    max_queue_tokens: int = Field(
        default=1_000_000,
        ge=1,
        description="tokens waiting for the model; a request that does not fit gets 429",
    )
    max_samples: int = Field(default=1024, ge=1, description="samples per request; more get 413")
    max_chars_per_response: int = Field(
        default=200_000, ge=1, description="characters per response text; longer ones get 413"
    )
    drain_timeout_s: float = Field(
        default=30.0, ge=0, description="seconds SIGTERM waits for in-flight requests"
    )
    retry_window_s: float = Field(
        default=10.0,
        ge=0,
        description="seconds within which an identical /get_reward request is a resent one "
        "(answered from the first, not counted; 0: off)",
    )
    # Memory: bodies in flight together (a parsed body takes several times its size).
    max_inflight_body_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="bytes of request bodies held at once; beyond it wait, then 429",
    )
    body_wait_s: float = Field(
        default=5.0, ge=0, description="seconds a body waits for room in that budget before 429"
    )
    # Slow clients: a connection that stops sending is closed.
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="seconds a connection may take to send its request headers",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="seconds a request body may pause between chunks before 408",
    )
    max_connections: int = Field(
        default=1024, ge=1, description="open connections at once; beyond it new ones get 503"
    )
    # /metrics lists run ids: with API keys it needs a key unless this opens it.
    metrics_open: bool = Field(
        default=False,
        description="serve /metrics without a bearer token even when API keys are set",
    )
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    dtype: str = Field(default="auto", description="auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16")
    log_level: str = Field(
        default="info",
        description="level of the JSON log lines on stderr",
        json_schema_extra={"choices": LOG_LEVELS},
    )
    log_responses: bool = Field(
        default=False,
        description="include response texts in the request log (off by default: privacy)",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_api_keys(cls, value: object) -> object:
        """SIGREWARD_API_KEYS: a JSON list of strings, or tokens separated by commas."""
        if not isinstance(value, str):
            return value
        raw = value.strip()
        if raw.startswith("["):
            keys = json.loads(raw)
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise ValueError("SIGREWARD_API_KEYS: expected a JSON list of strings")
            return [k for k in keys if k]
        return [k.strip() for k in raw.split(",") if k.strip()]
