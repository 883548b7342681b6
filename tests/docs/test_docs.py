"""The documentation against the code: names, routes, settings, defaults, examples and links.

Each check reads the real objects (the app's routes, the metrics registry, the pydantic models,
the CLI parser) and the Markdown files, so a renamed field, a new route or metric, a changed
default or a moved file fails here until the docs follow. No server is started.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase
from pydantic import BaseModel

from sigreward.api import protocol as api_models
from sigreward.api.app import create_app
from sigreward.api.errors import ERROR_TYPES
from sigreward.api.openrlhf import OpenRLHFRequest, OpenRLHFResponse
from sigreward.cli import build_parser
from sigreward.domain.run_config import RunConfig
from sigreward.metrics import Metrics
from sigreward.reward.baselines import BASELINE_PARAMS
from sigreward.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
API_MD = ROOT / "docs" / "api.md"
OPERATIONS_MD = ROOT / "docs" / "operations.md"

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CONVERTER = re.compile(r"{(\w+):\w+}")
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def without_code(text: str) -> str:
    """Markdown without fenced blocks and inline code spans (links there are not links)."""
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def section(text: str, heading: str) -> str:
    """The body of the section whose heading line is exactly ``heading``, up to the next
    heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        pytest.fail(f"heading {heading!r} not found")
    body: list[str] = []
    for line in lines[start + 1 :]:
        match = re.match(r"^(#+) ", line)
        if match and len(match.group(1)) <= level:
            break
        body.append(line)
    return "\n".join(body)


def table_rows(text: str) -> list[list[str]]:
    """Cells of every Markdown table row in ``text`` (separator rows left out)."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|") or re.fullmatch(r"\|[\s:|-]+\|", line):
            continue
        cells = re.split(r"(?<!\\)\|", line.strip("|"))
        rows.append([cell.strip() for cell in cells])
    return rows


def row_for(rows: list[list[str]], first_cell: str) -> list[str] | None:
    for row in rows:
        if row and row[0] == first_cell:
            return row
    return None


def backticked(cell: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", cell))


# -- metrics -------------------------------------------------------------------------------


def registered_metrics() -> list[MetricWrapperBase]:
    metrics = Metrics()
    wrappers = [v for v in vars(metrics).values() if isinstance(v, MetricWrapperBase)]
    # Every family in the registry must be one of these objects (nothing registered elsewhere).
    families = {family.name for family in metrics.registry.collect()}
    assert families == {w._name for w in wrappers}
    return wrappers


def exposed_name(metric: MetricWrapperBase) -> str:
    # prometheus_client appends _total to counters on exposition; that is the name to query.
    return metric._name + "_total" if metric._type == "counter" else metric._name


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    rows = table_rows(section(read(OPERATIONS_MD), "## Metrics"))
    wrappers = registered_metrics()
    assert len(wrappers) >= 10
    for metric in wrappers:
        name = exposed_name(metric)
        row = row_for(rows, f"`{name}`")
        assert row is not None, f"docs/operations.md has no metrics table row for {name}"
        assert row[1] == metric._type, f"{name}: documented as {row[1]!r}, is {metric._type!r}"
        labels = set(metric._labelnames)
        documented = backticked(row[2]) if labels else ({"none"} if row[2] == "none" else set())
        assert documented == (labels or {"none"}), f"{name}: labels {row[2]!r}, are {labels}"


def test_metrics_table_lists_no_metric_the_code_lacks() -> None:
    rows = table_rows(section(read(OPERATIONS_MD), "## Metrics"))
    exposed = {exposed_name(m) for m in registered_metrics()}
    documented = {
        name for row in rows for name in backticked(row[0]) if name.startswith("sigreward_")
    }
    assert documented, "no metrics table found"
    assert documented <= exposed, f"documented but not registered: {documented - exposed}"


# -- routes --------------------------------------------------------------------------------


def iter_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every endpoint, through included routers of any FastAPI version."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:  # FastAPI >= 0.16x keeps included routers as objects
            for context in contexts():
                for method in context.methods or ():
                    yield method, context.path
            continue
        if hasattr(route, "routes") and not hasattr(route, "methods"):  # a Mount
            yield from iter_routes(route.routes, prefix + getattr(route, "path", ""))
            continue
        for method in getattr(route, "methods", None) or ():
            yield method, prefix + route.path


def app_endpoints() -> set[str]:
    app = create_app(Settings(data_dir=Path("/nonexistent/sigreward-docs-test")))
    endpoints = set()
    for method, path in iter_routes(list(app.routes)):
        if method == "HEAD":
            continue
        # "{asset:path}" is Starlette's converter syntax; the docs write "{asset}".
        endpoints.add(method + " " + CONVERTER.sub(r"{\1}", path))
    return endpoints


def test_every_route_is_documented() -> None:
    text = read(API_MD)
    endpoints = app_endpoints()
    for required in ("POST /v1/rewards", "GET /v1/runs", "POST /get_reward", "GET /readyz"):
        assert required in endpoints  # the walk above found the included routers
    missing = sorted(e for e in endpoints if f"`{e}`" not in text)
    assert not missing, f"docs/api.md does not mention: {missing}"


def test_endpoint_table_lists_only_real_routes() -> None:
    rows = table_rows(section(read(API_MD), "## Endpoints"))
    documented = {name for row in rows for name in backticked(row[0])}
    assert len(documented) >= 15
    stale = documented - app_endpoints()
    assert not stale, f"docs/api.md lists endpoints the app does not have: {sorted(stale)}"


# -- settings and flags --------------------------------------------------------------------


def readme_config_rows() -> list[list[str]]:
    rows = table_rows(section(read(README), "## Configuration"))
    return [row for row in rows if row and row[0] != "flag"]


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    rows = readme_config_rows()
    variables = {v for row in rows for v in backticked(row[1])}
    for name in Settings.model_fields:
        assert f"SIGREWARD_{name.upper()}" in variables, f"README lacks SIGREWARD_{name.upper()}"
    known = {f"SIGREWARD_{name.upper()}" for name in Settings.model_fields}
    assert variables <= known, f"README names unknown variables: {variables - known}"


def test_numeric_setting_defaults_match_the_readme() -> None:
    rows = {v: row for row in readme_config_rows() for v in backticked(row[1])}
    checked = 0
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, bool) or not isinstance(default, int | float):
            continue
        text = str(int(default)) if float(default).is_integer() else str(default)
        cell = rows[f"SIGREWARD_{name.upper()}"][2]
        assert re.search(rf"(?<![\d.]){re.escape(text)}(?![\d.])", cell), (
            f"README default of {name} is {cell!r}, the code's is {default!r}"
        )
        checked += 1
    assert checked >= 6


def test_readme_flags_are_the_serve_flags() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    serve = subparsers.choices["serve"]
    flags = {
        option
        for action in serve._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    documented = {f for row in readme_config_rows() for f in backticked(row[0])}
    assert flags == documented, (
        f"missing from README: {sorted(flags - documented)}; "
        f"not flags of serve: {sorted(documented - flags)}"
    )


# -- run options and models ----------------------------------------------------------------


def test_every_run_option_is_in_the_api_reference_with_its_default() -> None:
    rows = table_rows(section(read(API_MD), "#### Run options"))
    for name, field in RunConfig.model_fields.items():
        row = row_for(rows, f"`{name}`")
        assert row is not None, f"docs/api.md's run options table lacks {name}"
        default = field.get_default(call_default_factory=True)
        assert json.dumps(default) in row[2], f"{name}: default {row[2]!r}, code has {default!r}"
    documented = {name for row in rows for name in backticked(row[0])}
    assert documented <= set(RunConfig.model_fields), "run options table lists unknown options"


def test_every_baseline_and_its_parameters_are_documented() -> None:
    rows = table_rows(section(read(API_MD), "#### Baselines"))
    for reward, params in BASELINE_PARAMS.items():
        row = row_for(rows, f"`{reward}`")
        assert row is not None, f"docs/api.md's baselines table lacks {reward}"
        for param, default in params.items():
            shown = "(required" if default is None else f"({default!r})"
            assert f"`{param}` {shown}" in row[1], f"{reward}.{param}: expected {shown}"


def field_models() -> list[type[BaseModel]]:
    return [
        api_models.RewardsRequest,
        api_models.RewardSample,
        api_models.Reference,
        api_models.RewardsResponse,
        api_models.SampleReward,
        api_models.ScheduleOut,
        api_models.RunResponse,
        api_models.RunScheduleOut,
        api_models.HistoryEntryOut,
        api_models.SignificanceRequest,
        api_models.SignificanceResponse,
        api_models.UnitDetailOut,
        api_models.InfoResponse,
        api_models.Limits,
        api_models.ErrorBody,
        OpenRLHFRequest,
        OpenRLHFResponse,
        api_models.RunListResponse,
    ]


@pytest.mark.parametrize("model", field_models(), ids=lambda m: m.__name__)
def test_every_request_and_response_field_is_named(model: type[BaseModel]) -> None:
    text = read(API_MD)
    missing = [name for name in model.model_fields if f"`{name}`" not in text]
    assert not missing, f"docs/api.md does not name {model.__name__} fields {missing}"


def test_every_error_type_is_in_the_errors_table() -> None:
    rows = table_rows(section(read(API_MD), "## Errors"))
    pairs = {(row[0], t) for row in rows for t in backticked(row[1])}
    for status, kind in ERROR_TYPES.items():
        assert (str(status), kind) in pairs, f"errors table lacks {status} {kind}"
    # Types set explicitly where errors are raised (e.g. invalid_json) are documented too.
    sources = (ROOT / "service" / "api").glob("*.py")
    explicit = {t for path in sources for t in re.findall(r'\btype="(\w+)"', read(path))}
    assert explicit, "expected explicit error types in service/api"
    assert explicit <= {kind for _, kind in pairs}, f"undocumented: {explicit}"


# -- examples ------------------------------------------------------------------------------

EXAMPLE_MODELS: list[type[BaseModel]] = [
    api_models.RunResponse,
    api_models.RewardsResponse,
    api_models.SignificanceResponse,
    api_models.InfoResponse,
    api_models.ErrorResponse,
    api_models.HealthResponse,
    api_models.RunListResponse,
    OpenRLHFResponse,
]


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``Model``, ``list[Model]``,
    ``Model | None``; None for plain types."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        inner = nested_model(arg)
        if inner is not None:
            return inner
    return None


def assert_exact_keys(model: type[BaseModel], value: Any, where: str) -> None:
    """Every object in ``value`` has exactly its model's fields (no stale or missing names)."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if item is None:
            continue
        keys = set(item)
        fields = set(model.model_fields)
        optional = {n for n, f in model.model_fields.items() if not f.is_required()}
        if model is OpenRLHFResponse or model is api_models.ErrorBody:
            assert fields - optional <= keys <= fields, f"{where}: {sorted(keys)}"
        else:
            assert keys == fields, f"{where}: keys {sorted(keys ^ fields)} differ from the model"
        for name, field in model.model_fields.items():
            inner = nested_model(field.annotation)
            if inner is not None and name in item:
                assert_exact_keys(inner, item[name], f"{where}.{name}")


def json_examples(text: str) -> list[str]:
    return re.findall(r"^```json\n(.*?)^```", text, re.M | re.S)


def test_json_examples_are_valid_answers_of_the_current_models() -> None:
    examples = json_examples(read(API_MD))
    assert len(examples) >= 20
    for example in examples:
        data = json.loads(example)  # "…" or comments would fail here: examples are verbatim
        matches = [
            m
            for m in EXAMPLE_MODELS
            if set(m.model_fields) - {n for n, f in m.model_fields.items() if not f.is_required()}
            <= set(data)
            <= set(m.model_fields)
        ]
        assert matches, f"example matches no response model: {example[:120]}"
        model = matches[0]
        model.model_validate(data)
        assert_exact_keys(model, data, model.__name__)
        if model is api_models.RunResponse:
            assert set(data["config"]) == set(RunConfig.model_fields)


# -- links ---------------------------------------------------------------------------------


def github_anchors(markdown: str) -> set[str]:
    anchors: set[str] = set()
    for line in FENCE.sub("", markdown).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        candidate, n = slug, 1
        while candidate in anchors:
            candidate, n = f"{slug}-{n}", n + 1
        anchors.add(candidate)
    return anchors


def doc_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(doc: Path) -> None:
    broken = []
    for target in LINK.findall(without_code(read(doc))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path_part, _, fragment = target.partition("#")
        resolved = (doc.parent / path_part).resolve() if path_part else doc
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
            continue
        if fragment and resolved.suffix == ".md" and fragment not in github_anchors(read(resolved)):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links {broken}"


def test_link_checker_sees_links() -> None:
    """The checker must find the README's known links, or it would pass on nothing."""
    targets = LINK.findall(without_code(read(README)))
    assert "docs/api.md" in targets and "#real-llmlingua-2-weights" in targets
    assert "missing.md" in LINK.findall("see [x](missing.md) and [y]( other.md#a )")
