"""One typed configuration for the whole server, read from flags and SIGREWARD_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server settings. Every field can be set as SIGREWARD_<NAME> or as a CLI flag."""

    model_config = SettingsConfigDict(
        env_prefix="SIGREWARD_", extra="ignore", env_ignore_empty=True
    )

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Field(default=Path("./data"), description="SQLite store directory")
    database_url: str | None = Field(
        default=None, description="postgresql://... for a store shared by several replicas"
    )
    model: str | None = Field(
        default=None, description="LLMLingua-2 style checkpoint (local dir or hub id)"
    )
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    dtype: str = Field(default="auto", description="auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16")
    api_keys: list[str] = Field(default_factory=list, description="accepted bearer tokens")
    max_body_bytes: int = 8 * 1024 * 1024
    max_samples: int = 1024
    max_chars_per_response: int = 200_000
    max_batch_tokens: int = 16_384
    max_queue_tokens: int = 1_000_000
    drain_timeout_s: float = 30.0
    # Memory: bodies in flight together (a parsed body takes several times its size).
    max_inflight_body_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="bytes of request bodies held at once; beyond it requests wait, then 429",
    )
    body_wait_s: float = Field(
        default=5.0, ge=0, description="how long a body waits for room in the in-flight budget"
    )
    # Slow clients: a connection that stops sending is closed.
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="seconds a connection may take to send its headers"
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0, description="seconds a request body may pause between two chunks"
    )
    max_connections: int = Field(
        default=1024, ge=1, description="open connections at once; beyond it new ones get 503"
    )
    # /metrics lists run ids: with API keys it needs a key unless this opens it.
    metrics_open: bool = Field(
        default=False, description="serve /metrics without a bearer token when API keys are set"
    )
    log_responses: bool = Field(default=False, description="log response texts (off: privacy)")
    log_level: str = "info"
