"""The SDK against a live ``sigreward serve``: same answers as the raw API, splitting and
reassembly, retries without double counting, typed errors, the async client."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.client.fixtures import FaultProxy
from tests.support.server import ServerProcess

from sigreward_client import (  # isort: skip  (path set up by tests.client.fixtures)
    APIError,
    AsyncRewardClient,
    BatchTooLarge,
    ConnectionFailed,
    RewardClient,
    Sample,
)


# A "given" reference (the default reference mode) as counts.
REF = {"significant": 2, "insignificant": 1}


def _run() -> str:
    return f"sdk-{uuid.uuid4().hex[:10]}"


def _batch(n_prompts: int = 4, per_prompt: int = 3) -> list[dict[str, Any]]:
    samples = []
    for r in range(per_prompt):
        for p in range(n_prompts):
            length = 3 + (p * 7 + r * 5) % 11
            values = [((p + 1) * (i + 3) * (r + 2)) % 17 / 4.0 for i in range(length)]
            samples.append(
                {"prompt_id": f"p{p}", "significance": values, "correct": (p + r) % 3 != 0}
            )
    return samples


def _raw_fields(sample: dict[str, Any]) -> tuple:
    return (
        sample["id"],
        sample["reward"],
        sample["length_reward"],
        sample["correct"],
        sample["significant"],
        sample["insignificant"],
        sample["reference_significant"],
        sample["reference_insignificant"],
    )


def _sdk_fields(sample: Any) -> tuple:
    return (
        sample.id,
        sample.reward,
        sample.length_reward,
        sample.correct,
        sample.significant,
        sample.insignificant,
        sample.reference_significant,
        sample.reference_insignificant,
    )


def test_results_equal_the_raw_api(values_server: ServerProcess) -> None:
    sdk_run, raw_run = _run(), _run()
    batch = _batch()
    with RewardClient(values_server.base_url, sdk_run) as client:
        view = client.configure(reference="group", significance="values")
        assert view.config["reference"] == "group" and view.schedule is not None
        result = client.score(0, batch)
    assert result.requests == 1
    assert all(s.id for s in result.samples)

    status, _ = values_server.request("PUT", f"/v1/runs/{raw_run}", {"reference": "group"})
    assert status == 201
    raw_samples = [{**s, "id": r.id} for s, r in zip(batch, result.samples, strict=True)]
    status, raw = values_server.request(
        "POST", "/v1/rewards", {"run_id": raw_run, "step": 0, "samples": raw_samples}
    )
    assert status == 200, raw
    assert result.rewards == raw["rewards"]
    assert result.length_rewards == raw["length_rewards"]
    assert [_sdk_fields(s) for s in result.samples] == [_raw_fields(s) for s in raw["samples"]]
    assert result.schedule.k == raw["schedule"]["k"]


def test_split_batches_are_reassembled_in_order(
    small_server: ServerProcess, values_server: ServerProcess
) -> None:
    """A 12-sample batch on a server that takes 3 per request: 4 requests, groups intact,
    answers equal one unsplit request to a server without the limit."""
    batch = _batch(n_prompts=4, per_prompt=3)
    run = _run()
    with RewardClient(small_server.base_url, run) as client:
        assert client.limits().max_samples == 3
        client.configure(reference="group")
        result = client.score(0, batch)
        assert result.requests == 4
        history = client.finish_step(0).schedule
    assert history is not None and history.history[0].samples == 12

    with RewardClient(values_server.base_url, _run()) as whole:
        whole.configure(reference="group")
        reference = whole.score(
            0, [{**s, "id": r.id} for s, r in zip(batch, result.samples, strict=True)]
        )
    assert reference.requests == 1
    assert result.rewards == reference.rewards
    assert [_sdk_fields(s) for s in result.samples] == [_sdk_fields(s) for s in reference.samples]


def test_split_by_body_bytes(small_server: ServerProcess) -> None:
    # Each sample is ~1.3 kB of values: the server's 4000-byte limit allows two per request.
    batch = [
        {"significance": [0.123456] * 150, "correct": True, "reference": REF} for _ in range(5)
    ]
    with RewardClient(small_server.base_url, _run()) as client:
        result = client.score(0, batch)
    assert result.requests == 3
    assert len(result.rewards) == 5


def test_a_group_over_the_limit_is_refused_before_sending(small_server: ServerProcess) -> None:
    run = _run()
    with RewardClient(small_server.base_url, run) as client:
        with pytest.raises(BatchTooLarge, match="prompt_id 'p0' \\(4 samples"):
            client.score(0, [{"prompt_id": "p0", "significance": [1.0], "correct": True}] * 4)
        with pytest.raises(APIError) as err:
            client.get_run()
    assert err.value.status_code == 404  # nothing was sent, so the run was never created


def test_typed_errors_carry_the_envelope(values_server: ServerProcess) -> None:
    run = _run()
    with RewardClient(values_server.base_url, run, max_retries=0) as client:
        with pytest.raises(APIError) as err:
            client.score(0, [{"significance": [1.0, 2.0], "reference": REF}])  # no correct/label
        assert err.value.status_code == 422
        assert err.value.param == "samples[0].correct"
        assert err.value.body["error"]["type"] == err.value.type
        client.configure(lambda_c=5.0)
        with pytest.raises(APIError) as conflict:
            client.configure(lambda_c=4.0)
        assert conflict.value.status_code == 409 and conflict.value.param == "lambda_c"
    with RewardClient(values_server.base_url, _run()) as client:
        with pytest.raises(APIError) as missing:
            client.get_run()
        assert missing.value.status_code == 404 and missing.value.type


def test_labels_are_verified_and_the_decision_is_returned(values_server: ServerProcess) -> None:
    with RewardClient(values_server.base_url, _run()) as client:
        result = client.score(
            0,
            [
                Sample(
                    response="so \\boxed{42}", label="42", significance=[1.0, 0.1], reference=REF
                ),
                Sample(
                    response="so \\boxed{41}", label="42", significance=[1.0, 0.1], reference=REF
                ),
                Sample(
                    response="junk \ufffd\x00",
                    label="\\boxed{42}",
                    significance=[1.0],
                    reference=REF,
                ),
            ],
        )
    assert result.correct == [True, False, False]
    assert result.rewards[0] - result.length_rewards[0] == pytest.approx(1.0)
    assert result.rewards[1] == pytest.approx(result.length_rewards[1])


def test_significance_and_info(values_server: ServerProcess) -> None:
    with RewardClient(values_server.base_url, _run()) as client:
        info = client.info()
        assert "values" in info["significance_modes"]
        detail = client.significance(values=[[0.0, 1.0, 0.5, 0.9]], threshold=0.6)
        assert detail.results[0].significant == 2 and detail.results[0].insignificant == 2
        with pytest.raises(ValueError, match="exactly one of texts or values"):
            client.significance()


def _rewards_path(method: str, path: str) -> bool:
    return method == "POST" and path == "/v1/rewards"


@pytest.mark.parametrize(
    ("faults", "retry_after"),
    [
        (["429", "429"], "0"),
        (["429"], None),  # no Retry-After: exponential backoff
        (["503"], "0"),
        (["forward_then_503"], "0"),  # the server counted it, the client never heard back
        (["forward_then_drop"], "0"),  # connection lost after the server counted it
    ],
)
def test_retries_never_count_twice(
    values_server: ServerProcess, faults: list[str], retry_after: str | None
) -> None:
    def fault(n: int, method: str, path: str) -> str:
        if _rewards_path(method, path) and n < len(faults):
            return faults[n]
        return "forward"

    run = _run()
    batch = _batch(n_prompts=2, per_prompt=2)
    with FaultProxy(values_server.base_url, fault, retry_after=retry_after) as proxy:
        with RewardClient(proxy.base_url, run, backoff_base=0.01, max_retries=4) as client:
            client.configure(reference="group")
            result = client.score(0, batch)
            assert proxy.actions("POST", "/v1/rewards") == [*faults, "forward"]
            view = client.finish_step(0)
    assert len(result.rewards) == 4
    assert view.schedule is not None
    assert view.schedule.history[0].samples == 4  # counted once despite the retry
    if faults[0].startswith("forward_then"):
        # The retried request carried the same ids, so the server answered them as duplicates.
        assert all(s.duplicate for s in result.samples)


def test_retries_give_up_with_the_last_error(values_server: ServerProcess) -> None:
    def fault(n: int, method: str, path: str) -> str:
        return "429" if _rewards_path(method, path) else "forward"

    with FaultProxy(values_server.base_url, fault) as proxy:
        with RewardClient(proxy.base_url, _run(), backoff_base=0.01, max_retries=2) as client:
            with pytest.raises(APIError) as err:
                client.score(0, [{"significance": [1.0], "correct": True, "reference": REF}])
    assert err.value.status_code == 429 and err.value.retry_after == 0.0
    assert len(proxy.actions("POST", "/v1/rewards")) == 3


def test_connection_refused_is_retried_then_raised() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with RewardClient(f"http://127.0.0.1:{port}", "r", backoff_base=0.01, max_retries=2) as client:
        with pytest.raises(ConnectionFailed, match="GET"):
            client.info()


def test_api_key(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.support.server import start_server

    server = start_server(["--api-key", "sekret"], data_dir=tmp_path_factory.mktemp("auth"))
    try:
        with RewardClient(server.base_url, _run(), api_key="sekret") as client:
            assert client.score(
                0, [{"significance": [1.0], "correct": True, "reference": REF}]
            ).rewards
        with RewardClient(server.base_url, _run(), api_key="wrong") as client:
            with pytest.raises(APIError) as err:
                client.info()
        assert err.value.status_code == 401
    finally:
        server.stop()


def test_async_client_matches_the_sync_client(values_server: ServerProcess) -> None:
    batch = _batch(n_prompts=3, per_prompt=2)
    with RewardClient(values_server.base_url, _run()) as sync_client:
        sync_client.configure(reference="group")
        expected = sync_client.score(0, batch)

    faults = ["429"]

    def fault(n: int, method: str, path: str) -> str:
        return faults[n] if _rewards_path(method, path) and n < len(faults) else "forward"

    async def main(base_url: str) -> tuple[Any, Any, Any]:
        async with AsyncRewardClient(base_url, _run(), backoff_base=0.01) as client:
            await client.configure(reference="group")
            result = await client.score(
                0, [{**s, "id": r.id} for s, r in zip(batch, expected.samples, strict=True)]
            )
            view = await client.finish_step(0)
            detail = await client.significance(values=[[0.2, 0.8]])
            return result, view, detail

    with FaultProxy(values_server.base_url, fault) as proxy:
        result, view, detail = asyncio.run(main(proxy.base_url))
        assert proxy.actions("POST", "/v1/rewards") == ["429", "forward"]
    assert result.rewards == expected.rewards
    assert [_sdk_fields(s) for s in result.samples] == [_sdk_fields(s) for s in expected.samples]
    assert view.schedule.history[0].samples == 6
    assert detail.results[0].significant == 1
