"""The paper's reward service (the published LLMLingua-2 code behind a small HTTP server).

The paper's public code runs LLMLingua-2 behind a small Flask server and the trainer sends one
request per response. Flask is not a dependency of this project, so this server uses the
standard library's ``http.server.ThreadingHTTPServer`` (one thread per connection, HTTP/1.1
keep-alive, like Flask's threaded development server). Every request is scored by
``bench/published_pipeline.py``: the published ``llmlingua`` 0.2.2 code itself, one response
per call, on the given checkpoint (fp32, chunks re-tokenized and padded to 512, its Python
word loops).

Endpoints:
- ``POST /count`` with ``{"text": "...", "threshold": 0.5}`` (threshold optional) answers
  ``{"significant": S, "insignificant": I}``.
- ``GET /livez``: 200 while serving; ``GET /readyz``: 200 (the model is loaded and warmed up
  before the socket is opened).

One model call runs at a time (a lock): a fast tokenizer shared between threads raises
"Already borrowed" when two threads use it at once, and on the CPU two concurrent forwards
only split the same cores. Request texts are never logged.

    python bench/reference_server.py --model DIR --port 8100
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.published_pipeline import PublishedPipeline  # noqa: E402

MAX_BODY_BYTES = 8 * 1024 * 1024


class ReferenceScorer:
    """The published pipeline behind a lock, so handler threads call it one at a time."""

    def __init__(self, model_dir: str, device: str = "cpu", threshold: float = 0.5) -> None:
        from transformers import AutoTokenizer

        from sigreward.engine.tokenization import detect_family

        family = detect_family(AutoTokenizer.from_pretrained(model_dir))
        self.pipeline = PublishedPipeline(Path(model_dir), family, device=device)
        self.threshold = threshold
        self._lock = threading.Lock()

    def warmup(self) -> None:
        self.count("Warm up the model once. Then serve.", self.threshold)

    def count(self, text: str, threshold: float) -> tuple[int, int]:
        with self._lock:
            return self.pipeline.count(text, threshold)


class BadRequest(ValueError):
    """A request body the server refuses (400); the message names the field."""


def parse_count_body(raw: bytes, default_threshold: float) -> tuple[str, float]:
    """Validate a ``POST /count`` body; returns (text, threshold)."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"body: not JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    text = body.get("text")
    if not isinstance(text, str):
        raise BadRequest("text: required, a string")
    threshold = body.get("threshold", default_threshold)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise BadRequest("threshold: expected a number")
    if not math.isfinite(threshold) or not 0.0 < threshold < 1.0:
        raise BadRequest("threshold: must be in (0, 1)")
    return text, float(threshold)


def make_handler(scorer: ReferenceScorer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a threaded Flask/werkzeug server

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # no access log: it costs time and the benchmark reads none of it

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path in ("/livez", "/readyz"):
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": {"type": "not_found", "message": self.path}})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/count":
                self._send(404, {"error": {"type": "not_found", "message": self.path}})
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self.close_connection = True
                self._send(411, {"error": {"type": "length_required", "message": "Content-Length"}})
                return
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                self._send(413, {"error": {"type": "too_large", "message": "body"}})
                return
            raw = self.rfile.read(length)
            try:
                text, threshold = parse_count_body(raw, scorer.threshold)
            except BadRequest as exc:
                self._send(400, {"error": {"type": "invalid_request", "message": str(exc)}})
                return
            significant, insignificant = scorer.count(text, threshold)
            self._send(200, {"significant": significant, "insignificant": insignificant})

    return Handler


def make_server(scorer: ReferenceScorer, host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(scorer))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", required=True, help="token-classification checkpoint directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threshold", type=float, default=0.5, help="default when a body omits it")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    scorer = ReferenceScorer(args.model, device=args.device, threshold=args.threshold)
    scorer.warmup()
    server = make_server(scorer, args.host, args.port)
    print(f"reference server on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
