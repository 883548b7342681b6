"""``sigreward`` command line: ``serve`` (the HTTP service) and ``report`` (when installed).

Flags override SIGREWARD_* environment variables, which override the defaults of
``sigreward.settings.Settings``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

import uvicorn

logger = logging.getLogger("sigreward.cli")


def _add_serve_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="run the HTTP reward service")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default 8000)")
    p.add_argument("--data-dir", help="directory of the SQLite store (default ./data)")
    p.add_argument("--model", help="LLMLingua-2 style checkpoint: local directory or hub id")
    p.add_argument("--database-url", help="postgresql://... to share runs between replicas")
    p.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        help="accepted bearer token (repeatable; also SIGREWARD_API_KEYS, comma-separated)",
    )
    p.add_argument("--max-body-bytes", type=int)
    p.add_argument("--max-batch-tokens", type=int)
    p.add_argument("--max-queue-tokens", type=int)
    p.add_argument("--max-samples", type=int)
    p.add_argument("--max-chars-per-response", type=int)
    p.add_argument("--drain-timeout", type=float, dest="drain_timeout_s", help="seconds")
    p.add_argument(
        "--retry-window",
        type=float,
        dest="retry_window_s",
        help="seconds within which an identical /get_reward request is a resent one (0: off)",
    )
    p.add_argument(
        "--max-inflight-body-bytes",
        type=int,
        help="bytes of request bodies held at once (default 64 MiB); beyond it wait, then 429",
    )
    p.add_argument(
        "--body-wait",
        type=float,
        dest="body_wait_s",
        help="seconds a body waits for room in that budget before 429 (default 5)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        dest="header_timeout_s",
        help="seconds a connection may take to send its request headers (default 10)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        dest="body_timeout_s",
        help="seconds a request body may pause between chunks before 408 (default 30)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        help="open connections at once (default 1024); beyond it new requests get 503",
    )
    p.add_argument(
        "--metrics-open",
        action="store_true",
        default=None,
        help="serve /metrics without a bearer token even when API keys are set",
    )
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--dtype", help="auto | fp32 | bf16")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--log-responses",
        action="store_true",
        default=None,
        help="include response texts in the request log (off by default: privacy)",
    )


_SETTINGS_FIELDS = (
    "host",
    "port",
    "data_dir",
    "model",
    "database_url",
    "api_keys",
    "max_body_bytes",
    "max_batch_tokens",
    "max_queue_tokens",
    "max_samples",
    "max_chars_per_response",
    "drain_timeout_s",
    "retry_window_s",
    "max_inflight_body_bytes",
    "body_wait_s",
    "header_timeout_s",
    "body_timeout_s",
    "max_connections",
    "metrics_open",
    "device",
    "dtype",
    "log_level",
    "log_responses",
)


def _env_api_keys() -> list[str] | None:
    """SIGREWARD_API_KEYS as a JSON list or a comma-separated string."""
    raw = os.environ.get("SIGREWARD_API_KEYS")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.startswith("["):
        keys = json.loads(raw)
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValueError("SIGREWARD_API_KEYS: expected a JSON list of strings")
        return [k for k in keys if k]
    return [k.strip() for k in raw.split(",") if k.strip()]


def settings_from_args(args: argparse.Namespace) -> Any:
    """Settings from flags over SIGREWARD_* variables over defaults."""
    from sigreward.settings import Settings

    overrides = {
        name: getattr(args, name)
        for name in _SETTINGS_FIELDS
        if getattr(args, name, None) is not None
    }
    # pydantic-settings only reads JSON for list fields; accept "a,b" as operators expect.
    env_keys = _env_api_keys()
    saved = os.environ.pop("SIGREWARD_API_KEYS", None)
    try:
        settings = Settings(**overrides)
    finally:
        if saved is not None:
            os.environ["SIGREWARD_API_KEYS"] = saved
    if "api_keys" not in overrides and env_keys is not None:
        settings.api_keys = env_keys
    return settings


def _fail(message: str, code: int = 2) -> int:
    print(f"sigreward: error: {message}", file=sys.stderr)
    return code


def _check_store(settings: Any) -> str | None:
    """Open (and create) the store once before serving, so a bad --database-url or an
    unwritable --data-dir is one clear line instead of a failed-startup traceback."""
    from sigreward.store import make_store

    try:
        if not settings.database_url:
            os.makedirs(settings.data_dir, exist_ok=True)
        make_store(settings).close()
    except Exception as exc:
        where = "database" if settings.database_url else f"data dir {str(settings.data_dir)!r}"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot open the {where}: {reason}"
    return None


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from sigreward.logging_setup import configure_logging

    try:
        settings = settings_from_args(args)
    except (ValidationError, ValueError) as exc:
        return _fail(f"invalid configuration: {exc}".splitlines()[0])
    configure_logging(settings.log_level)

    from sigreward.api.app import build_engine, create_app

    model = settings.model
    if (
        model
        and model.startswith((".", os.path.sep, "~"))
        and not os.path.exists(os.path.expanduser(model))
    ):
        return _fail(f"model path {model!r} does not exist")
    error = _check_store(settings)
    if error:
        return _fail(error)
    from sigreward.engine import ModelLoadError

    try:
        engine = build_engine(settings)
    except ModelLoadError as exc:
        return _fail(str(exc).splitlines()[0] if str(exc) else repr(exc))
    except OSError as exc:
        return _fail(f"cannot load model {settings.model!r}: {str(exc).splitlines()[0]}")
    except (ValueError, RuntimeError) as exc:  # e.g. --max-batch-tokens below one chunk
        return _fail(f"invalid configuration: {str(exc).splitlines()[0]}")

    from sigreward.connections import header_timeout_protocol

    app = create_app(settings, engine=engine)
    config = uvicorn.Config(
        app,
        http=header_timeout_protocol(settings.header_timeout_s),
        # Beyond this many open connections (or running requests) uvicorn answers 503.
        limit_concurrency=settings.max_connections,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        server_header=False,
        # Draining happens before uvicorn's own shutdown; after it, stragglers get 1 s.
        timeout_graceful_shutdown=1,
    )
    server = DrainingServer(config, app.state.service, settings.drain_timeout_s)
    server.run()
    if server.started is False:
        return 3
    return 0


class DrainingServer(uvicorn.Server):
    """uvicorn.Server with a drain phase: on the first SIGTERM/SIGINT the server keeps
    listening, /readyz answers 503 at once and new work 503, and in-flight requests get up to
    ``drain_timeout`` seconds to finish; then uvicorn's normal shutdown runs. A second signal
    exits at once."""

    def __init__(self, config: Any, state: Any, drain_timeout: float) -> None:
        super().__init__(config)
        self.service_state = state
        self.drain_timeout = max(0.0, drain_timeout)
        self._drain_started: float | None = None
        self._drain_signal = signal.SIGTERM
        self._drain_logged = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: flags only; on_tick does the logging and metrics (they take locks).
        if self._drain_started is None:
            self._drain_started = time.monotonic()
            self._drain_signal = sig
            self.service_state.start_draining()
            return
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        state = self.service_state
        if self._drain_started is not None and not self.should_exit:
            if not self._drain_logged:
                self._drain_logged = True
                state.metrics.ready.set(0)
                logger.info(
                    "signal %s: draining (%d in flight, up to %.1f s)",
                    signal.Signals(self._drain_signal).name,
                    state.in_flight,
                    self.drain_timeout,
                )
            waited = time.monotonic() - self._drain_started
            if state.in_flight == 0 or waited >= self.drain_timeout:
                if state.in_flight:
                    logger.warning("drain timeout: %d request(s) still in flight", state.in_flight)
                self.should_exit = True
        return bool(await super().on_tick(counter))


def _add_report_parser(subparsers: Any) -> None:
    """Wire ``sigreward report`` when service/report.py is installed."""
    if importlib.util.find_spec("sigreward.report") is None:
        return
    report = importlib.import_module("sigreward.report")
    if hasattr(report, "add_report_parser"):
        report.add_report_parser(subparsers)
    elif hasattr(report, "main"):
        p = subparsers.add_parser("report", help="plots and tables of a run", add_help=False)
        p.add_argument("report_args", nargs=argparse.REMAINDER)
        p.set_defaults(func=lambda a: int(report.main(a.report_args) or 0))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sigreward", description="Significance-weighted length reward service"
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_serve_parser(subparsers)
    _add_report_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    func = getattr(args, "func", None)
    if func is None:
        parser.error(f"unknown command {args.command!r}")
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
