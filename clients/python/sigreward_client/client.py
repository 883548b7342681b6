"""Synchronous and asynchronous clients of the sigreward HTTP API (v1)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx

from sigreward_client import _defaults
from sigreward_client._core import (
    RETRY_STATUSES,
    Chunk,
    RetryClock,
    RetryPolicy,
    dumps,
    merge_results,
    parse_body,
    parse_retry_after,
    prepare_samples,
    run_view,
    split_batch,
)
from sigreward_client.errors import APIError, ConnectionFailed
from sigreward_client.models import (
    RunView,
    SampleLike,
    ScoreResult,
    ServerLimits,
    SignificanceResult,
)

DEFAULT_TIMEOUT = _defaults.DEFAULT_TIMEOUT
# Statuses that mean "the server is away" (restarting, draining, behind a gateway), as opposed
# to 429, which is ordinary back-pressure and not worth a warning.
OUTAGE_STATUSES = frozenset({502, 503, 504})

log = logging.getLogger("sigreward_client")


class _Answer(NamedTuple):
    body: Any  # the parsed JSON of a success
    retry_in: float | None  # seconds to wait before sending again; None: done


def _encode(body: Any, raw: bytes | None) -> tuple[bytes | None, dict[str, str] | None]:
    """The request's content and headers: ``raw`` bytes as they are, else ``body`` as JSON."""
    content = raw if raw is not None else (dumps(body) if body is not None else None)
    return content, {"Content-Type": "application/json"} if content is not None else None


class _Base:
    """Configuration and request building shared by both clients.

    ``base_url``, ``run_id``, ``api_key``, ``timeout`` and ``retry_budget`` default to
    ``SIGREWARD_URL``, ``SIGREWARD_RUN_ID``, ``SIGREWARD_API_KEY``, ``SIGREWARD_TIMEOUT`` and
    ``SIGREWARD_RETRY_BUDGET``. Retries (connection errors, 429, 502, 503, 504) go on for
    ``retry_budget`` seconds (default 120) from the first failure, and ``max_retries`` tries
    when given; one warning is logged when the server becomes unreachable.
    """

    def __init__(
        self,
        base_url: str | None = None,
        run_id: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff_base: float = 0.25,
        backoff_max: float = 5.0,
        limits: ServerLimits | None = None,
        retry_budget: float | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = _defaults.base_url(base_url).rstrip("/")
        self.run_id = _defaults.run_id(run_id)
        self.timeout = _defaults.timeout(timeout)
        self.retry = RetryPolicy(
            budget=_defaults.retry_budget(retry_budget),
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )
        self._limits = limits
        self._away = False  # warned that the server is unreachable; reset when it answers
        api_key = _defaults.api_key(api_key)
        self._headers = {"Accept": "application/json", "User-Agent": "sigreward-client/0.1"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        # for httpx.Client or httpx.AsyncClient; a transport of the matching kind is for tests
        self._http_options: dict[str, Any] = {
            "base_url": self.base_url,
            "headers": self._headers,
            "timeout": self.timeout,
            "transport": transport,
        }

    @property
    def _run_path(self) -> str:
        return f"/v1/runs/{quote(self.run_id, safe='')}"

    @staticmethod
    def _significance_body(
        texts: Sequence[str] | None,
        values: Sequence[Sequence[float]] | None,
        threshold: float | None,
    ) -> dict[str, Any]:
        if (texts is None) == (values is None):
            raise ValueError("give exactly one of texts or values")
        body: dict[str, Any] = (
            {"texts": list(texts)}
            if texts is not None
            else {"values": [list(v) for v in values or []]}
        )
        if threshold is not None:
            body["significance_threshold"] = threshold
        return body

    @staticmethod
    def _significance_result(body: Any) -> SignificanceResult:
        if isinstance(body, list):
            return SignificanceResult.model_validate({"results": body})
        return SignificanceResult.model_validate(body)

    def _delay_after(
        self, err: httpx.TransportError, clock: RetryClock, method: str, path: str
    ) -> float:
        """Seconds to wait before retrying a request that could not reach the server; raises
        ConnectionFailed once the retry policy is spent."""
        delay = clock.next_delay()
        if delay is None:
            raise ConnectionFailed(
                f"{method} {self.base_url}{path}: {err!r} (gave up after "
                f"{clock.attempt} retries, {time.monotonic() - clock.started:.0f} s)"
            ) from err
        self._server_away(f"cannot connect ({type(err).__name__})")
        return delay

    def _answer(self, response: httpx.Response, clock: RetryClock) -> _Answer:
        """The parsed body of a success, or the wait before retrying a 429 or an outage;
        raises APIError for an error that is final (or once the retry policy is spent)."""
        parsed = parse_body(response.content)
        if response.status_code < 400:
            self._server_back()
            return _Answer(parsed, None)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if response.status_code in RETRY_STATUSES:
            delay = clock.next_delay(retry_after)
            if delay is not None:
                if response.status_code in OUTAGE_STATUSES:
                    self._server_away(f"HTTP {response.status_code}")
                return _Answer(None, delay)
        raise APIError.from_response(response.status_code, parsed, retry_after)

    def _server_away(self, what: str) -> None:
        """Warn once per outage: the trainer keeps waiting instead of failing."""
        if not self._away:
            self._away = True
            log.warning(
                "sigreward: %s at %s; retrying for up to %.0f s (retry_budget / "
                "SIGREWARD_RETRY_BUDGET) while it restarts",
                what,
                self.base_url,
                self.retry.budget,
            )

    def _server_back(self) -> None:
        if self._away:
            self._away = False
            log.warning("sigreward: %s answers again", self.base_url)


class RewardClient(_Base):
    """Blocking client. One instance per training run (``run_id``); thread-safe like httpx.

    >>> client = RewardClient("http://127.0.0.1:8000", "exp-1")
    >>> client.configure(reference="group")
    >>> result = client.score(step, [{"prompt_id": "p1", "response": "...", "correct": True}])
    >>> result.rewards
    """

    def __init__(
        self, base_url: str | None = None, run_id: str | None = None, **options: Any
    ) -> None:
        super().__init__(base_url, run_id, **options)
        self._http = httpx.Client(**self._http_options)

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
        content, headers = _encode(body, raw)
        clock = RetryClock(self.retry)
        while True:
            try:
                response = self._http.request(method, path, content=content, headers=headers)
            except httpx.TransportError as err:
                time.sleep(self._delay_after(err, clock, method, path))
                continue
            answer = self._answer(response, clock)
            if answer.retry_in is None:
                return answer.body
            time.sleep(answer.retry_in)

    def info(self) -> dict[str, Any]:
        """``GET /v1/info``: version, modes, model, device, kernel backend and limits."""
        body = self._request("GET", "/v1/info")
        self._limits = ServerLimits.from_info(body)
        return body

    def limits(self) -> ServerLimits:
        """The server's request limits (fetched once from /v1/info)."""
        if self._limits is None:
            self.info()
        assert self._limits is not None
        return self._limits

    def configure(self, **run_config: Any) -> RunView:
        """``PUT /v1/runs/{run_id}``: create the run, or check that it has this configuration."""
        return run_view(self.run_id, self._request("PUT", self._run_path, run_config))

    def get_run(self) -> RunView:
        return run_view(self.run_id, self._request("GET", self._run_path))

    def delete_run(self) -> None:
        self._request("DELETE", self._run_path)

    def finish_step(self, step: int) -> RunView:
        """Finish every step up to and including ``step`` (applies the schedule)."""
        return run_view(self.run_id, self._request("POST", f"{self._run_path}/steps/{step}/finish"))

    def score(self, step: int | None, samples: Sequence[SampleLike]) -> ScoreResult:
        """Rewards for ``samples`` of ``step``, in order. Batches over the server's limits are
        sent as several requests (a prompt's group always in one) and reassembled.

        ``step`` None: the server counts the step from the run's ``samples_per_step`` (one
        durable counter per run, so any number of processes count correctly)."""
        prepared = prepare_samples(step, samples)
        chunks = split_batch(self.run_id, step, prepared, self.limits())
        parts: list[tuple[Chunk, Mapping[str, Any]]] = []
        for chunk in chunks:
            parts.append((chunk, self._request("POST", "/v1/rewards", raw=chunk.body)))
        return merge_results(self.run_id, step, len(prepared), parts)

    def significance(
        self,
        texts: Sequence[str] | None = None,
        values: Sequence[Sequence[float]] | None = None,
        threshold: float | None = None,
    ) -> SignificanceResult:
        """``POST /v1/significance``: units, normalised values and counts per response."""
        body = self._request(
            "POST", "/v1/significance", self._significance_body(texts, values, threshold)
        )
        return self._significance_result(body)


class AsyncRewardClient(_Base):
    """The same API as :class:`RewardClient` for asyncio code (``await client.score(...)``)."""

    def __init__(
        self, base_url: str | None = None, run_id: str | None = None, **options: Any
    ) -> None:
        super().__init__(base_url, run_id, **options)
        self._http = httpx.AsyncClient(**self._http_options)

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _request(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> Any:
        content, headers = _encode(body, raw)
        clock = RetryClock(self.retry)
        while True:
            try:
                response = await self._http.request(method, path, content=content, headers=headers)
            except httpx.TransportError as err:
                await asyncio.sleep(self._delay_after(err, clock, method, path))
                continue
            answer = self._answer(response, clock)
            if answer.retry_in is None:
                return answer.body
            await asyncio.sleep(answer.retry_in)

    async def info(self) -> dict[str, Any]:
        body = await self._request("GET", "/v1/info")
        self._limits = ServerLimits.from_info(body)
        return body

    async def limits(self) -> ServerLimits:
        if self._limits is None:
            await self.info()
        assert self._limits is not None
        return self._limits

    async def configure(self, **run_config: Any) -> RunView:
        return run_view(self.run_id, await self._request("PUT", self._run_path, run_config))

    async def get_run(self) -> RunView:
        return run_view(self.run_id, await self._request("GET", self._run_path))

    async def delete_run(self) -> None:
        await self._request("DELETE", self._run_path)

    async def finish_step(self, step: int) -> RunView:
        body = await self._request("POST", f"{self._run_path}/steps/{step}/finish")
        return run_view(self.run_id, body)

    async def score(self, step: int | None, samples: Sequence[SampleLike]) -> ScoreResult:
        prepared = prepare_samples(step, samples)
        chunks = split_batch(self.run_id, step, prepared, await self.limits())
        parts: list[tuple[Chunk, Mapping[str, Any]]] = []
        # Sequential on purpose: the first request of a step finishes earlier steps and pins
        # first_seen references; later parts must see that state.
        for chunk in chunks:
            parts.append((chunk, await self._request("POST", "/v1/rewards", raw=chunk.body)))
        return merge_results(self.run_id, step, len(prepared), parts)

    async def significance(
        self,
        texts: Sequence[str] | None = None,
        values: Sequence[Sequence[float]] | None = None,
        threshold: float | None = None,
    ) -> SignificanceResult:
        body = self._significance_body(texts, values, threshold)
        return self._significance_result(await self._request("POST", "/v1/significance", body))
