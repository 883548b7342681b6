"""The local image tooling: scripts/smoke-image against a real server, and the pip
configuration scripts/build-image-local hands to a buildah build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.models import build_tiny_bert

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scripts" / "smoke-image"
BUILD = ROOT / "scripts" / "build-image-local"


def run_smoke(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SMOKE), "--url", url, "--wait", "30", *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_smoke_passes_against_a_values_server_and_really_creates_the_run(server_factory):
    server = server_factory(args=["--api-key", "smoke-key"])
    out = run_smoke(server.base_url, "--api-key", "smoke-key")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "rewards are [5.387912809451864, -5.123620672804243]" in out.stdout
    run_id = next(
        line.split("/v1/runs/")[1].split()[0] for line in out.stdout.splitlines() if "PUT" in line
    )
    status, run = server.request(
        "GET", f"/v1/runs/{run_id}", headers={"Authorization": "Bearer smoke-key"}
    )
    assert status == 200
    assert run["config"]["significance"] == "values"


def test_smoke_fails_naming_the_check_when_the_server_refuses(server_factory):
    # Without the key /v1/info answers 401; with two samples over --max-samples 1 the rewards
    # call answers 413. Either way the smoke must fail at that check, not pass.
    server = server_factory(args=["--api-key", "smoke-key", "--max-samples", "1"])
    out = run_smoke(server.base_url)
    assert out.returncode == 1
    assert "FAIL GET /v1/info answers 200; got HTTP 401" in out.stderr
    assert "authentication_error" in out.stderr
    out = run_smoke(server.base_url, "--api-key", "smoke-key")
    assert out.returncode == 1
    assert "FAIL POST /v1/rewards answers 200; got HTTP 413" in out.stderr, out.stderr


def test_smoke_with_a_model_scores_a_text_and_fails_on_a_server_without_one(
    server_factory, tmp_path
):
    model = build_tiny_bert(tmp_path / "tiny-bert")
    server = server_factory(args=["--model", str(model)])
    out = run_smoke(server.base_url, "--model-loaded")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok  the model scores the" in out.stdout
    bare = server_factory()
    out = run_smoke(bare.base_url, "--model-loaded")
    assert out.returncode == 1
    assert "FAIL /v1/info offers classifier mode with a model" in out.stderr


def test_smoke_fails_when_nothing_listens():
    out = run_smoke("http://127.0.0.1:9", "--wait", "1")
    assert out.returncode == 1
    assert "/readyz did not answer 200" in out.stderr


@pytest.fixture
def fake_pip(tmp_path: Path):
    """A `pip` whose `config list` prints the given lines, as the real one formats them."""

    def make(lines: list[str]) -> Path:
        listing = tmp_path / "config-list.txt"
        listing.write_text("".join(line + "\n" for line in lines))
        script = tmp_path / "pip"
        script.write_text(f'#!/bin/sh\n[ "$1 $2" = "config list" ] && cat "{listing}"\n')
        script.chmod(0o755)
        return script

    return make


def pip_config(pip: Path, work: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BUILD), "--pip-config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PIP": str(pip), "SIGREWARD_WORK": str(work)},
    )


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_build_passes_the_hosts_pip_sources_read_only_and_remaps_its_files(fake_pip, tmp_path):
    index = tmp_path / "pypi" / "simple"
    index.mkdir(parents=True)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    cert = tmp_path / "ca.crt"
    cert.write_text("cert")
    constraint = tmp_path / "constraints.txt"
    constraint.write_text("torch<=3\n")
    pip = fake_pip(
        [
            f":env:.cert='{cert}'",
            ":env:.default-timeout='180'",
            ":env:.disable-pip-version-check='1'",
            f"global.constraint='{constraint}'",
            f"global.extra-index-url='file://{index} https://example.org/simple'",
            f"global.find-links='{wheels}'",
        ]
    )
    work = tmp_path / "work"
    out = pip_config(pip, work)
    assert out.returncode == 0, out.stderr
    conf = (work / "pip.conf").read_text().splitlines()
    assert conf[0] == "[global]"
    assert sorted(conf[1:]) == sorted(
        [
            "cert = /opt/host-pip/cert-ca.crt",
            "constraint = /opt/host-pip/constraint-constraints.txt",
            "default-timeout = 180",
            f"extra-index-url = file://{index} https://example.org/simple",
            f"find-links = {wheels}",
        ]
    )
    mounts = set(out.stdout.splitlines()[len(conf) :])
    assert mounts == {
        f"{cert}:/opt/host-pip/cert-ca.crt:ro",
        f"{constraint}:/opt/host-pip/constraint-constraints.txt:ro",
        # The index's parent: its pages link to ../../files/.
        f"{index.parent}:{index.parent}:ro",
        f"{wheels}:{wheels}:ro",
        f"{work / 'pip.conf'}:/etc/pip.conf:ro",
    }


def test_build_refuses_a_pip_source_that_does_not_exist(fake_pip, tmp_path):
    pip = fake_pip([f"global.find-links='{tmp_path / 'missing'}'"])
    out = pip_config(pip, tmp_path / "work")
    assert out.returncode == 1
    assert f"pip's find-links names {tmp_path / 'missing'}, which is not a folder" in out.stderr
