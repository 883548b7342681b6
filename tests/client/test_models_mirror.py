"""The SDK's models mirror the server's wire models: the SDK cannot import the server (it has no
torch), so its models restate the fields, and this test keeps the two in step. Every field the
SDK names exists on the server's model with the same JSON type, and a response model misses no
field the server always sends."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from sigreward.api import protocol
from sigreward_client import models as sdk

# (SDK model, server model, SDK fields the server does not send, server fields the SDK leaves
# to ``extra``): a response model that leaves a field out reads it as an extra attribute.
PAIRS: list[tuple[type[BaseModel], type[BaseModel], set[str], set[str]]] = [
    (sdk.Sample, protocol.RewardSample, set(), set()),
    (sdk.Reference, protocol.Reference, set(), set()),
    (sdk.SampleResult, protocol.SampleReward, set(), set()),
    (sdk.Schedule, protocol.ScheduleOut, set(), set()),
    # requests: how many HTTP requests the SDK split the batch into
    (sdk.ScoreResult, protocol.RewardsResponse, {"requests"}, set()),
    (sdk.StepStats, protocol.HistoryEntryOut, set(),
     {"k_before", "mean_significant", "mean_insignificant", "mean_length_reward_correct",
      "mean_length_reward_wrong", "degenerate_references"}),
    (sdk.RunSchedule, protocol.RunScheduleOut, set(),
     {"k_warning", "max_step", "finished_through"}),
    (sdk.RunView, protocol.RunResponse, set(), set()),
    (sdk.UnitDetail, protocol.UnitDetailOut, set(), {"chunk_units"}),
    (sdk.SignificanceResult, protocol.SignificanceResponse, set(),
     {"significance", "significance_threshold"}),
]  # fmt: skip


def _json_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a property schema allows, null aside; a model or a dict is "object"."""
    if "anyOf" in schema:
        return set().union(*(_json_types(s) for s in schema["anyOf"]))
    if "$ref" in schema or "additionalProperties" in schema:
        return {"object"}
    kind = schema.get("type")
    if kind == "array":
        return {f"array of {t}" for t in sorted(_json_types(schema.get("items", {})))}
    if kind == "integer":
        return {"number"}  # a JSON integer is a number to a float field
    return set() if kind in (None, "null") else {kind}


def _properties(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    return model.model_json_schema()["properties"]


@pytest.mark.parametrize(
    ("sdk_model", "server_model", "sdk_only", "left_out"),
    PAIRS,
    ids=[pair[0].__name__ for pair in PAIRS],
)
def test_sdk_model_mirrors_the_server(
    sdk_model: type[BaseModel],
    server_model: type[BaseModel],
    sdk_only: set[str],
    left_out: set[str],
) -> None:
    ours, theirs = _properties(sdk_model), _properties(server_model)
    assert left_out <= set(theirs) and not sdk_only & set(theirs), "stale exceptions in PAIRS"
    assert set(ours) - sdk_only - set(theirs) == set(), "SDK fields the server does not know"
    assert set(theirs) - left_out - set(ours) == set(), "server fields the SDK does not read"
    for name in set(ours) & set(theirs):
        ours_types, theirs_types = _json_types(ours[name]), _json_types(theirs[name])
        assert ours_types >= theirs_types, (
            f"{sdk_model.__name__}.{name}: {ours_types} vs {theirs_types}"
        )
