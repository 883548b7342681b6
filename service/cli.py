"""``sigreward`` command line: ``serve`` (the HTTP service) and ``report`` (when installed).

Flags override SIGREWARD_* environment variables, which override the defaults of
``sigreward.settings.Settings``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import signal
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from pydantic.fields import FieldInfo

if TYPE_CHECKING:
    from sigreward.settings import Settings

logger = logging.getLogger("sigreward.cli")


def _flag_extra(field: FieldInfo) -> dict[str, Any]:
    """What a Settings field says about its flag beyond its type (``flag``, ``choices``)."""
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _flag(name: str, field: FieldInfo) -> str:
    """``--max-samples`` for max_samples; seconds drop their unit (``--drain-timeout``)."""
    flag = _flag_extra(field).get("flag")
    if isinstance(flag, str):
        return flag
    return "--" + name.removesuffix("_s").replace("_", "-")


def _shown_default(field: FieldInfo) -> str | None:
    default = field.get_default(call_default_factory=True)
    if default is None or default is False or default == []:
        return None
    if isinstance(default, Path) and not default.is_absolute():
        return f"./{default}"
    return f"{default:g}" if isinstance(default, float) else str(default)


def _add_setting(parser: argparse.ArgumentParser, name: str, field: FieldInfo) -> None:
    """One flag for a Settings field. Its default stays None, so that an unset flag leaves
    the SIGREWARD_* variable or the field's default in charge."""
    help_text = field.description or ""
    default = _shown_default(field)
    if default is not None:
        help_text += f" (default {default})"
    kwargs: dict[str, Any] = {"dest": name, "help": help_text}
    annotation = field.annotation
    if annotation is bool:
        kwargs.update(action="store_true", default=None)
    elif typing.get_origin(annotation) is list:
        kwargs["action"] = "append"
    elif annotation in (int, float):
        kwargs["type"] = annotation
    choices = _flag_extra(field).get("choices")
    if choices is not None:
        kwargs["choices"] = choices
    parser.add_argument(_flag(name, field), **kwargs)


def _add_serve_parser(subparsers: Any) -> None:
    from sigreward.settings import Settings

    p = subparsers.add_parser("serve", help="run the HTTP reward service")
    for name, field in Settings.model_fields.items():
        _add_setting(p, name, field)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from flags over SIGREWARD_* variables over defaults."""
    from sigreward.settings import Settings

    overrides = {
        name: getattr(args, name)
        for name in Settings.model_fields
        if getattr(args, name, None) is not None
    }
    return Settings(**overrides)


def _invalid_settings(exc: Exception) -> str:
    """One line naming each bad setting by its flag and its environment variable."""
    from pydantic import ValidationError

    from sigreward.settings import Settings

    if not isinstance(exc, ValidationError):
        return str(exc).splitlines()[0]
    parts = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        field = Settings.model_fields.get(name)
        where = f"{_flag(name, field)} / SIGREWARD_{name.upper()}" if field else name
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _fail(message: str, code: int = 2) -> int:
    print(f"sigreward: error: {message}", file=sys.stderr)
    return code


def _check_store(settings: Settings) -> str | None:
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
        return _fail(f"invalid configuration: {_invalid_settings(exc)}")
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
