"""A run's configuration (api.md "Runs"): validated once at the edge, stored as JSON."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sigreward.bounds import DEFAULT_MAX_STEP_JUMP, MAX_LAMBDA, MAX_OPTION, MAX_STEP
from sigreward.reward.params import BASELINE_PARAMS, ParamValue, validate_reward_params

SignificanceMode = Literal["classifier", "values"]
ReferenceMode = Literal["given", "first_seen", "group"]
# How the paper's reward treats a reference without significant or without insignificant
# units: "zero" (the paper: both ratios 0) or "floor" (each reference count at least 1).
DegenerateReferenceRule = Literal["zero", "floor"]
RewardName = Literal[
    "significance",
    "kimi",
    "cosine",
    "dapo",
    "l1_exact",
    "l1_max",
    "arora_zanette",
    "truncation",
    "shorter_better",
    "grpo_lead",
    "alp",
    "laser",
    "laser_d",
    "thinkprune",
]
VerifierName = Literal["math"]

RUN_ID_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"

# The paper's reward has no reward_params (its parameters are the lambda_* options).
NO_PARAMS_MESSAGE = (
    'only a baseline reward takes parameters; reward "significance" is configured with '
    "lambda_c, lambda_w_n and lambda_w_e (or name a baseline in reward)"
)
REWARD_PARAMS_DESCRIPTION = (
    "a baseline's parameters by name: numbers, integers, or (thinkprune's schedule) a list "
    "of [step, limit] pairs; published defaults fill the names left out"
)

PARAMS_SCHEMA = TypeAdapter(dict[str, ParamValue]).json_schema()


class RunConfigPatch(BaseModel):
    """The body of PUT /v1/runs/{run_id}: any subset of the fields, validated."""

    # strict: JSON false or "1.5" is not a number here, as the OpenAPI schema says.
    model_config = ConfigDict(extra="forbid", strict=True)

    significance: SignificanceMode | None = None
    reference: ReferenceMode | None = None
    reward: RewardName | None = None
    # Checked per reward by validate_reward_params, which names the bad entry; the schema
    # shows the values it accepts.
    reward_params: Annotated[dict[str, Any], WithJsonSchema(PARAMS_SCHEMA)] | None = Field(
        default=None, description=REWARD_PARAMS_DESCRIPTION
    )
    # Bounded so that k, the rewards and a step's sums stay finite (service/bounds.py).
    lambda_c: float | None = Field(default=None, ge=0, le=MAX_LAMBDA, allow_inf_nan=False)
    lambda_w_n: float | None = Field(default=None, ge=0, le=MAX_LAMBDA, allow_inf_nan=False)
    lambda_w_e: float | None = Field(default=None, ge=0, le=MAX_LAMBDA, allow_inf_nan=False)
    significance_threshold: float | None = Field(default=None, gt=0, lt=1, allow_inf_nan=False)
    slope_start_step: int | None = Field(default=None, ge=0)
    slope_period: int | None = Field(default=None, ge=1)
    slope_threshold: float | None = Field(
        default=None, ge=-MAX_OPTION, le=MAX_OPTION, allow_inf_nan=False
    )
    k_max: float | None = Field(default=None, gt=0, le=MAX_OPTION, allow_inf_nan=False)
    degenerate_reference: DegenerateReferenceRule | None = None
    # Outcome verification for samples that carry `label` instead of `correct`.
    verifier: VerifierName | None = None
    # OpenRLHF endpoint: derive the step from a count of samples when the client sends none.
    samples_per_step: int | None = Field(default=None, ge=1)
    # Samples per prompt and step (OpenRLHF's n_samples_per_prompt): a counted request whose
    # prompts already have this many samples in the current step is a resent copy.
    samples_per_prompt: int | None = Field(default=None, ge=1)
    # A request or finish may name at most this many steps past the highest one seen.
    max_step_jump: int | None = Field(default=None, ge=1, le=MAX_STEP)

    @field_validator("reward_params")
    @classmethod
    def _no_params_on_significance(
        cls, value: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        if value and info.data.get("reward") == "significance":
            raise ValueError(NO_PARAMS_MESSAGE)
        return value

    @model_validator(mode="after")
    def _known_params(self) -> RunConfigPatch:
        if self.reward_params is not None and self.reward not in (None, "significance"):
            # Normalised (numbers as float, integers as int) so that stored and compared
            # configurations agree.
            self.reward_params = validate_reward_params(self.reward, self.reward_params)
        return self


class RunConfig(BaseModel):
    """A run's resolved configuration: every field set, defaults of docs/method.md#reward."""

    model_config = ConfigDict(extra="forbid")

    significance: SignificanceMode = "values"
    reference: ReferenceMode = "given"
    reward: RewardName = "significance"
    reward_params: dict[str, ParamValue] = Field(
        default_factory=dict, description=REWARD_PARAMS_DESCRIPTION
    )
    lambda_c: float = 5.0
    lambda_w_n: float = 2.0
    lambda_w_e: float = 5.0
    significance_threshold: float = 0.5
    slope_start_step: int = 50
    slope_period: int = 10
    slope_threshold: float = 2.5
    k_max: float | None = None
    degenerate_reference: DegenerateReferenceRule = "zero"
    verifier: VerifierName = "math"
    samples_per_step: int | None = None
    samples_per_prompt: int | None = None
    max_step_jump: int = DEFAULT_MAX_STEP_JUMP

    @classmethod
    def resolve(cls, patch: RunConfigPatch, model_loaded: bool) -> RunConfig:
        """Fill omitted fields; significance defaults to classifier only when a model is loaded."""
        given = patch.model_dump(exclude_none=True)
        given.setdefault("significance", "classifier" if model_loaded else "values")
        config = cls(**given)
        if config.reward == "significance" and config.reward_params:
            raise ValueError(f"reward_params must be empty: {NO_PARAMS_MESSAGE}")
        if config.reward != "significance":
            # RewardParamError (a ValueError) names a missing required parameter.
            config.reward_params = validate_reward_params(
                config.reward, config.reward_params, fill_defaults=True
            )
        return config

    def conflicts(self, patch: RunConfigPatch) -> list[str]:
        """Names of fields present in ``patch`` whose values differ from this configuration."""
        given: dict[str, Any] = patch.model_dump(exclude_unset=True)
        stored = self.model_dump()
        same_reward = given.get("reward", self.reward) == self.reward
        if "reward_params" in given and self.reward != "significance" and same_reward:
            # The stored params were resolved with the published defaults filled in; a patch
            # that names no reward is checked against the stored one.
            defaults = {k: v for k, v in BASELINE_PARAMS[self.reward].items() if v is not None}
            mine = validate_reward_params(self.reward, given["reward_params"] or {})
            given["reward_params"] = {**defaults, **mine}
        return [name for name, value in given.items() if stored.get(name) != value]
