"""The /ui page in headless Chromium against a live ``sigreward serve``."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sigreward.domain.results import Counts
from sigreward.reward.significance import SignificanceRewardParams, significance_length_reward
from tests.support.models import build_tiny_bert
from tests.support.server import ServerProcess, start_server
from tests.ui.driving import auth_headers, drive_run

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

CHART_SERIES = {
    "score": ["score"],
    "units": ["mean_significant", "mean_insignificant"],
    "k": ["k_after"],
    "length": ["mean_length_reward_correct", "mean_length_reward_wrong"],
}
RGBA = re.compile(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)")


@pytest.fixture(scope="module")
def values_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server without a model: values mode only."""
    server = start_server(data_dir=tmp_path_factory.mktemp("ui-values"))
    yield server
    server.stop()


def js_fmt(x: float) -> str:
    """The page's number format: integers as they are, others with four decimals."""
    return str(int(x)) if float(x).is_integer() else f"{x:.4f}"


def background_alpha(css: str) -> float:
    match = RGBA.fullmatch(css.strip())
    assert match, f"unexpected background colour {css!r}"
    return float(match.group(4)) if match.group(4) is not None else 1.0


def units_on_page(page: Any, container: str) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        f"{container} .unit",
        """els => els.map(el => ({
            value: el.dataset.value,
            text: el.textContent,
            insignificant: el.classList.contains('insignificant'),
            background: getComputedStyle(el).backgroundColor,
            decoration: getComputedStyle(el).textDecorationLine,
        }))""",
    )


def check_units(units: list[dict[str, Any]], detail: dict[str, Any], threshold: float) -> None:
    """Every unit's data-value, class and shading come from the server's normalised values."""
    assert len(units) == len(detail["values"])
    for i, (unit, value) in enumerate(zip(units, detail["values"], strict=True)):
        assert float(unit["value"]) == value, (i, unit, value)
        assert unit["insignificant"] == (value < threshold), (i, unit, value)
        assert ("line-through" in unit["decoration"]) == (value < threshold), (i, unit)
        # Chromium keeps alpha at 8-bit precision in computed colours.
        assert background_alpha(unit["background"]) == pytest.approx(value, abs=1 / 255 + 1e-6)


def test_significance_view_shades_units_with_server_values(
    page: Any, values_server: ServerProcess, artifacts: Path
) -> None:
    config = {"lambda_c": 4.0, "lambda_w_n": 1.5, "lambda_w_e": 6.0, "significance_threshold": 0.4}
    run = drive_run(values_server, "sig-run", 55, config=config, seed=3)
    response = [0.3, 2.1, 0.2, 1.7, -1.0, 0.9, 2.1, 0.0, 1.25]
    labels = "First add two and three so the total is five".split()[: len(response)]
    reference = [1.0, -0.5, 2.0, 0.1, 0.6, 1.9, -2.0, 0.4, 0.8, 1.1, 0.0, 0.3]

    page.goto(values_server.base_url + "/ui")
    page.wait_for_selector("body[data-ready='true']")
    assert page.is_disabled("#mode-classifier"), "classifier offered without a model"
    assert page.is_checked("#mode-values")
    page.select_option("#sig-run", "sig-run")
    expect(page.locator("#sig-threshold")).to_have_value("0.4")
    page.fill("#sig-response", str(response))
    page.fill("#sig-labels", " ".join(labels))
    page.fill("#sig-reference", str(reference))
    page.click("#sig-submit")
    page.wait_for_selector("#sig-result:not([hidden])")

    status, answer = values_server.request(
        "POST", "/v1/significance", {"values": [response, reference], "significance_threshold": 0.4}
    )
    assert status == 200, answer
    detail, ref_detail = answer["results"]
    units = units_on_page(page, "#sig-units")
    check_units(units, detail, 0.4)
    assert [u["text"] for u in units] == labels
    check_units(units_on_page(page, "#sig-ref-units"), ref_detail, 0.4)
    assert any(u["insignificant"] for u in units) and not all(u["insignificant"] for u in units)

    assert page.text_content("#count-s") == str(detail["significant"])
    assert page.text_content("#count-i") == str(detail["insignificant"])
    k = run["schedule"]["k"]
    assert page.text_content("#rw-k") == js_fmt(k)
    assert page.text_content("#rw-lambdas") == "4, 1.5000, 6"
    shown = page.evaluate("window.sigreward.reward")
    params = SignificanceRewardParams(lambda_c=4.0, lambda_w_n=1.5, lambda_w_e=6.0)
    counts = Counts(detail["significant"], detail["insignificant"])
    ref = Counts(ref_detail["significant"], ref_detail["insignificant"])
    for correct, key in ((True, "correct"), (False, "wrong")):
        expected, _ = significance_length_reward(correct, counts, ref, k, params)
        assert shown[key] == pytest.approx(expected, abs=1e-12), key
        assert page.text_content(f"#rw-{key}") == js_fmt(expected), key
    assert shown["r_S"] == pytest.approx(counts.significant / ref.significant)
    assert shown["r_I"] == pytest.approx(counts.insignificant / ref.insignificant)
    page.screenshot(path=str(artifacts / "significance-values.png"), full_page=True)


def test_reward_formula_in_page_matches_python(page: Any, values_server: ServerProcess) -> None:
    """The page's JS copy of docs/method.md#reward agrees with service/reward on a grid."""
    page.goto(values_server.base_url + "/ui")
    page.wait_for_selector("body[data-ready='true']")
    grid = list(
        itertools.product(
            [True, False],
            [(0, 0), (3, 0), (0, 4), (5, 7), (12.5, 2), (40, 60)],
            [(0, 0), (10, 0), (0, 10), (10, 10), (4.5, 20), (2, 1)],
            [-5.0, -0.5, 0.0, 1.2, 3.183, 60.0],
        )
    )
    cases = [{"correct": c, "counts": list(s), "reference": list(r), "k": k} for c, s, r, k in grid]
    got = page.evaluate(
        """cases => cases.map(c => window.SigReward.lengthReward(
            c.correct,
            {significant: c.counts[0], insignificant: c.counts[1]},
            {significant: c.reference[0], insignificant: c.reference[1]},
            c.k, {lambda_c: 5, lambda_w_n: 2, lambda_w_e: 5}))""",
        cases,
    )
    params = SignificanceRewardParams()
    for case, value in zip(cases, got, strict=True):
        expected, _ = significance_length_reward(
            case["correct"], Counts(*case["counts"]), Counts(*case["reference"]), case["k"], params
        )
        assert math.isclose(value, expected, rel_tol=1e-12, abs_tol=1e-12), (case, value)


def chart_state(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => Object.fromEntries(Object.entries(window.sigreward.charts).map(([name, c]) => {
            const canvas = document.querySelector('#chart-' + name + ' canvas');
            const ctx = canvas.getContext('2d');
            const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            let inked = 0;
            for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) inked++;
            return [name, {
                points: c.points,
                attr: document.getElementById('chart-' + name).dataset.points,
                series: c.series,
                data: c.data,
                canvas: [canvas.width, canvas.height],
                inked: inked,
            }];
        }))"""
    )


def check_charts(page: Any, history: list[dict[str, Any]]) -> None:
    charts = chart_state(page)
    assert set(charts) == set(CHART_SERIES)
    steps = [h["step"] for h in history]
    for name, keys in CHART_SERIES.items():
        chart = charts[name]
        assert chart["points"] == len(history) and chart["attr"] == str(len(history)), name
        assert chart["series"] == keys
        assert chart["data"][0] == steps
        for key, column in zip(keys, chart["data"][1:], strict=True):
            assert column == [h[key] for h in history], (name, key)
        width, height = chart["canvas"]
        assert width > 300 and height > 150, (name, chart["canvas"])
        # Lines, points and axes leave far more than a handful of pixels drawn.
        assert chart["inked"] > 2000, (name, chart["inked"])


def test_run_view_plots_every_step_and_refreshes_live(
    page: Any, values_server: ServerProcess, artifacts: Path
) -> None:
    run = drive_run(values_server, "run-60", 60, seed=1)
    history = run["schedule"]["history"]
    assert len(history) == 60
    assert run["schedule"]["dynamic"], "60 steps should have taken the first slope"

    page.goto(values_server.base_url + "/ui#run=run-60")
    page.wait_for_selector("body[data-run-loaded='run-60']")
    page.wait_for_selector("#chart-length[data-points='60']")
    assert page.is_visible("#view-run") and not page.is_visible("#view-significance")
    check_charts(page, history)
    assert page.text_content("#state-steps") == "60"
    assert page.text_content("#state-k") == js_fmt(run["schedule"]["k"])
    config_cells = page.eval_on_selector_all(
        "#run-config td",
        "els => Object.fromEntries(els.map(e => [e.dataset.field, e.textContent]))",
    )
    assert set(config_cells) == set(run["config"])
    assert config_cells["significance"] == "values"
    assert config_cells["slope_period"] == "10"
    options = page.eval_on_selector_all("#run-select option", "els => els.map(e => e.value)")
    assert "run-60" in options
    page.screenshot(path=str(artifacts / "run-view.png"), full_page=True)

    # Live refresh: two more steps appear without reloading the page.
    more = drive_run(values_server, "run-60", 2, seed=2, first_step=60)
    assert len(more["schedule"]["history"]) == 62
    page.wait_for_selector("#chart-score[data-points='62']", timeout=15_000)
    page.wait_for_selector("#chart-k[data-points='62']")
    check_charts(page, more["schedule"]["history"])

    # Paused: a further step stays off the page until refreshed by hand.
    page.uncheck("#run-live")
    paused = drive_run(values_server, "run-60", 1, seed=4, first_step=62)
    page.wait_for_timeout(4_000)
    assert page.get_attribute("#chart-score", "data-points") == "62"
    page.click("#run-refresh")
    page.wait_for_selector("#chart-score[data-points='63']")
    check_charts(page, paused["schedule"]["history"])


def test_page_asks_for_api_key_and_keeps_it_in_the_tab(
    page: Any, server_factory: Any, artifacts: Path
) -> None:
    key = "ui-secret-key"
    server = server_factory(args=["--api-key", key])
    assert server.request("GET", "/v1/info")[0] == 401
    drive_run(server, "keyed-run", 3, api_key=key)

    page.goto(server.base_url + "/ui")
    page.wait_for_selector("#key-bar:not([hidden])")
    page.screenshot(path=str(artifacts / "api-key-prompt.png"), full_page=True)
    page.fill("#api-key", "wrong-key")
    page.click("#key-save")
    expect(page.locator("#key-error")).to_contain_text("not accepted")
    assert page.is_visible("#key-bar")
    page.fill("#api-key", key)
    page.click("#key-save")
    page.wait_for_selector("body[data-ready='true']")
    assert page.is_hidden("#key-bar")
    assert page.evaluate("sessionStorage.getItem('sigreward.apiKey')") == key
    assert page.evaluate("localStorage.length") == 0
    assert "keyed-run" in page.eval_on_selector_all(
        "#sig-run option", "els => els.map(e => e.value)"
    )

    # The key is sent with later calls: score values and open the run.
    page.fill("#sig-response", "[1, 0, 3]")
    page.click("#sig-submit")
    page.wait_for_selector("#sig-units .unit")
    status, answer = server.request(
        "POST", "/v1/significance", {"values": [[1, 0, 3]]}, headers=auth_headers(key)
    )
    assert status == 200
    check_units(units_on_page(page, "#sig-units"), answer["results"][0], 0.5)
    page.goto(server.base_url + "/ui#run=keyed-run")
    page.wait_for_selector("body[data-run-loaded='keyed-run']")
    assert page.get_attribute("#chart-score", "data-points") == "3"


def test_classifier_mode_shades_words(
    page: Any, server_factory: Any, tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> None:
    model = build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")
    server = server_factory(args=["--model", str(model), "--device", "cpu"])
    text = "First, we add the two numbers. Then we carry the one and check the result again."
    page.goto(server.base_url + "/ui")
    page.wait_for_selector("body[data-ready='true']")
    assert page.is_checked("#mode-classifier")
    page.fill("#sig-response", text)
    page.click("#sig-submit")
    page.wait_for_selector("#sig-units .unit")
    status, answer = server.request("POST", "/v1/significance", {"texts": [text]})
    assert status == 200, answer
    detail = answer["results"][0]
    units = units_on_page(page, "#sig-units")
    check_units(units, detail, 0.5)
    assert [u["text"] for u in units] == detail["units"]
    assert page.text_content("#count-s") == str(detail["significant"])
    page.screenshot(path=str(artifacts / "significance-classifier.png"), full_page=True)
