"""Client SDK of the sigreward reward service (httpx + pydantic only; no torch)."""

from sigreward_client.client import AsyncRewardClient, RewardClient
from sigreward_client.errors import APIError, BatchTooLarge, ConnectionFailed, SigrewardError
from sigreward_client.models import (
    Reference,
    RunView,
    Sample,
    SampleResult,
    Schedule,
    ScoreResult,
    ServerLimits,
    SignificanceResult,
)

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AsyncRewardClient",
    "BatchTooLarge",
    "ConnectionFailed",
    "Reference",
    "RewardClient",
    "RunView",
    "Sample",
    "SampleResult",
    "Schedule",
    "ScoreResult",
    "ServerLimits",
    "SigrewardError",
    "SignificanceResult",
]
