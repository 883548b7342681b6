"""POST /get_reward: OpenRLHF's remote reward model protocol (``--remote_rm_url``).

OpenRLHF sends ``{"query": [...], "prompts": [...], "labels": [...]}`` where each query is the
prompt followed by the response, decoded with special tokens kept, and reads ``"rewards"``
(0.8: only that), ``"scores"`` and ``"extra_logs"`` (0.11: one value per query each).

The run and step come from the URL: ``--remote_rm_url 'http://host:8000/get_reward?run_id=exp-1'``
(OpenRLHF cannot send a step). Without ``step`` the step is derived from the run option
``samples_per_step``: the run's durable sample counter numbers samples in arrival order, and a
request whose first sample gets index i goes, whole, to step i // samples_per_step. The counter
moves inside the score transaction (``RunService.score_counted``), so concurrent requests at
a step boundary land exactly, survive restarts and are shared by replicas; ``extra_logs`` says
when the step was derived.
``?extra_logs=false`` leaves ``extra_logs`` out (some OpenRLHF 0.8 consumers fail on it).
``?key=`` carries the API key (OpenRLHF cannot send headers; see service/api/url_key.py). The
run must exist (404 with what to do otherwise). A resent request (OpenRLHF resends a body whose
answer it lost) is answered from the first and not counted: ``RetryCheck`` and the run option
``samples_per_prompt`` (service/domain/runs.py, docs/integrations.md).

Correctness comes from the run's verifier (math-verify) against the labels.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from sigreward.api import scoring
from sigreward.api.context import context_of
from sigreward.api.deps import in_thread, service_state
from sigreward.api.errors import ApiError
from sigreward.api.jsonroute import ParsedJsonRoute
from sigreward.api.protocol import RewardSample, error_responses
from sigreward.batching import Timing
from sigreward.domain.retries import RetryCheck
from sigreward.domain.run_config import RUN_ID_PATTERN

# Bodies are parsed off the event loop, as on the other JSON routes (jsonroute.py).
router = APIRouter(tags=["openrlhf"], route_class=ParsedJsonRoute)

# OpenRLHF sleeps 1 s before it resends a request whose answer it lost; identical responses
# generated together arrive closer to the first than this (bench/retry_rules.py).
RESEND_MIN_GAP_S = 0.5

# Special-token texts a decoder leaves at the end of a response (EOS / end-of-turn / padding).
TRAILING_SPECIAL_TOKENS = (
    "</s>",
    "<|endoftext|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<｜end▁of▁sentence｜>",
    "<end_of_turn>",
    "<eos>",
    "<pad>",
    "[PAD]",
    "[SEP]",
    "<|finetune_right_pad_id|>",
)


class OpenRLHFRequest(BaseModel):
    # OpenRLHF versions add fields over time; unknown ones are ignored, not refused.
    model_config = ConfigDict(extra="ignore")

    query: list[str] = Field(min_length=1, description="prompt + response, special tokens kept")
    prompts: list[str] | None = Field(default=None, description="the prompt of each query")
    # Datasets with numeric answers arrive as numbers; they are verified as their text.
    labels: list[str | int | float | None] | None = Field(
        default=None, description="reference answer of each query (verified with math-verify)"
    )


class OpenRLHFResponse(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]] | None = None


def strip_trailing_special(text: str, extra: tuple[str, ...] = ()) -> str:
    """``text`` without the EOS / pad token texts (and the whitespace) at its end."""
    tokens = TRAILING_SPECIAL_TOKENS + extra
    changed = True
    while changed:
        changed = False
        stripped = text.rstrip()
        for token in tokens:
            if stripped.endswith(token):
                text = stripped[: -len(token)]
                changed = True
                break
    return text.rstrip()


def split_response(query: str, prompt: str | None) -> tuple[str, bool]:
    """The response part of ``query``: what follows its prompt, without the special tokens
    at its end and the whitespace around it. Returns (response, prompt found)."""
    if not prompt:
        return strip_trailing_special(query).lstrip(), False
    for needle in (prompt, prompt.strip()):
        # The stripped form catches re-tokenisation that changed whitespace at the seam.
        at = query.find(needle) if needle else -1
        if at >= 0:
            return strip_trailing_special(query[at + len(needle) :]).lstrip(), True
    return strip_trailing_special(query).lstrip(), False


def prompt_id_of(prompt: str) -> str:
    return "p-" + hashlib.sha256(prompt.encode("utf-8", "replace")).hexdigest()[:24]


def request_fingerprint(body: OpenRLHFRequest, step: int | None) -> str:
    """What a resent request repeats exactly: every query, prompt and label, and the step."""
    canonical = json.dumps(
        [step, body.query, body.prompts, body.labels], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8", "replace")).hexdigest()


async def _check_run_exists(request: Request, run_id: str) -> None:
    """OpenRLHF's runs must be created first: a run made up on the fly would get the default
    reference "given", which text-only OpenRLHF requests can never satisfy."""
    state = service_state(request)
    assert state.runs is not None
    try:
        await in_thread(state.runs.get_config, run_id)
    except ApiError as exc:
        if exc.status_code != 404:
            raise
        raise ApiError(
            404,
            f"run {run_id!r} does not exist: create the run with PUT /v1/runs/{run_id} and "
            "reference first_seen (and samples_per_step to derive steps) before training",
            param="run_id",
        ) from exc


@router.post(
    "/get_reward",
    response_model=OpenRLHFResponse,
    response_model_exclude_none=True,
    responses=error_responses(400, 401, 404, 413, 415, 422, 429, 503),
    summary="OpenRLHF remote reward model endpoint (--remote_rm_url .../get_reward?run_id=...)",
)
async def get_reward(
    request: Request,
    body: OpenRLHFRequest,
    run_id: Annotated[str, Query(pattern=RUN_ID_PATTERN, max_length=128)],
    step: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    extra_logs: Annotated[bool, Query(description="false: leave extra_logs out")] = True,
) -> dict[str, Any]:
    state = service_state(request)
    if state.runs is None or state.batcher is None:
        raise ApiError(503, "the server is not ready yet")
    n = len(body.query)
    for name, values in (("prompts", body.prompts), ("labels", body.labels)):
        if values is not None and len(values) != n:
            raise ApiError(422, f"{name}: {len(values)} entries for {n} queries", param=name)
    if body.labels is None:
        raise ApiError(
            422,
            "labels: required (the reference answers that correctness is verified against)",
            param="labels",
        )
    for i, label in enumerate(body.labels):
        if label is None:
            raise ApiError(422, f"labels[{i}]: required", param=f"labels[{i}]")

    ctx = context_of(request)
    ctx.run_id = run_id
    await _check_run_exists(request, run_id)
    derived = step is None
    if derived:
        config = await in_thread(state.runs.effective_config, run_id)
        if config.samples_per_step is None:
            raise ApiError(
                422,
                "step: give ?step= in the URL or set the run option samples_per_step "
                f"(PUT /v1/runs/{run_id}) so the server can derive it",
                param="step",
            )
    else:
        ctx.step = step
    ctx.samples = n

    samples: list[RewardSample] = []
    found: list[bool] = []
    for i, query in enumerate(body.query):
        prompt = body.prompts[i] if body.prompts is not None else None
        response, ok = split_response(query, prompt)
        found.append(ok)
        samples.append(
            RewardSample(
                prompt_id=prompt_id_of(prompt) if prompt else None,
                response=response,
                label=str(body.labels[i]),
            )
        )
    if state.settings.log_responses:
        # As for /v1/rewards: the response texts (what follows each prompt), never by default.
        ctx.logged_texts = [s.response for s in samples]
    timing = Timing()
    ctx.timing = timing
    # OpenRLHF resends a request whose answer it lost (timeout, proxy error) with the same body
    # a second or so later; without sample ids, only the body and its timing can tell.
    retry = RetryCheck(
        request_fingerprint(body, step),
        state.settings.retry_window_s,
        time.time(),
        RESEND_MIN_GAP_S,
    )
    # step None: chosen from the run's sample counter inside the score transaction.
    result = await scoring.score(state, run_id, step, samples, timing, retry)
    step = result.step
    ctx.step = step
    rewards = [r.reward for r in result.samples]
    out: dict[str, Any] = {
        "rewards": rewards,
        # OpenRLHF's "scores" feed dynamic filtering: the outcome (1 correct, 0 wrong).
        "scores": [1.0 if r.correct else 0.0 for r in result.samples],
    }
    if extra_logs:
        out["extra_logs"] = {
            "sigreward_length_reward": [r.length_reward for r in result.samples],
            "sigreward_correct": [1.0 if r.correct else 0.0 for r in result.samples],
            "sigreward_k": [result.schedule.k] * n,
            "sigreward_step": [float(step)] * n,
            # 1.0 when the step was derived from samples_per_step (no ?step= in the URL).
            "sigreward_step_derived": [1.0 if derived else 0.0] * n,
            "sigreward_late": [1.0 if result.late else 0.0] * n,
            "sigreward_prompt_found": [1.0 if ok else 0.0 for ok in found],
            # 1.0 when answered from an identical request of moments before (not counted).
            "sigreward_suspected_retry": [1.0 if result.suspected_retry else 0.0] * n,
        }
        if all(r.significant is not None for r in result.samples):
            # Counts of significant / insignificant words (significance reward runs only).
            out["extra_logs"]["sigreward_significant"] = [r.significant for r in result.samples]
            out["extra_logs"]["sigreward_insignificant"] = [r.insignificant for r in result.samples]
    return out
