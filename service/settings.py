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
    log_responses: bool = Field(default=False, description="log response texts (off: privacy)")
    log_level: str = "info"
    retry_window_s: float = Field(
        default=10.0,
        ge=0,
        description="/get_reward: a request identical to one stored this many seconds before "
        "is a resent one (answered from the first, not counted); 0 turns the check off",
    )
