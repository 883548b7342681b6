"""Fixtures for the chart tests (a helm 3 binary, or a skip that says why, and a renderer) and
for the image script tests (a real server)."""

from __future__ import annotations

import base64
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.helm import Helm, HelmUnavailable, find_helm
from tests.support.server import server_factory

__all__ = ["server_factory"]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "sigreward"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "rel"


def pyproject() -> dict[str, Any]:
    """pyproject.toml, parsed (tomllib needs Python 3.11+)."""
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@dataclass
class Rendered:
    docs: list[dict[str, Any]]

    def kinds(self) -> list[str]:
        return [d["kind"] for d in self.docs]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.all(kind)
        assert len(found) == 1, f"expected one {kind}, rendered {self.kinds()}"
        return found[0]

    @property
    def pod(self) -> dict[str, Any]:
        return self.one("Deployment")["spec"]["template"]["spec"]

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.pod["containers"]
        return container

    @property
    def env(self) -> dict[str, dict[str, Any]]:
        return {e["name"]: e for e in self.container.get("env", [])}

    def secret_data(self, name: str) -> dict[str, str]:
        """Decoded data of a Secret the chart renders."""
        for secret in self.all("Secret"):
            if secret["metadata"]["name"] == name:
                return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
        raise KeyError(f"no Secret {name} rendered")

    def mount_for(self, path: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(volumeMount, volume) of the mount that holds `path`, the deepest one first."""
        mounts = sorted(self.container.get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        for mount in mounts:
            root = mount["mountPath"].rstrip("/")
            if path == root or path.startswith(root + "/"):
                return mount, volumes[mount["name"]]
        return None


class ChartRunner:
    def __init__(self, helm: Helm) -> None:
        self.helm = helm

    def _args(
        self, values_files: tuple[Path, ...], values: dict[str, Any] | None, tmp: Path
    ) -> list[str]:
        args: list[str] = []
        for f in values_files:
            args += ["-f", str(f)]
        if values is not None:
            extra = tmp / "values.yaml"
            extra.write_text(yaml.safe_dump(values))
            args += ["-f", str(extra)]
        return args

    def run(self, command: str, *values_files: Path, values: dict[str, Any] | None = None):
        with tempfile.TemporaryDirectory() as tmp:
            extra = self._args(values_files, values, Path(tmp))
            if command == "template":
                return self.helm.run("template", RELEASE, str(CHART), "--namespace", "ns", *extra)
            return self.helm.run("lint", "--strict", str(CHART), *extra)

    def template(self, *values_files: Path, values: dict[str, Any] | None = None) -> Rendered:
        out = self.run("template", *values_files, values=values)
        assert out.returncode == 0, out.stderr
        docs = [d for d in yaml.safe_load_all(out.stdout) if d]
        return Rendered(docs)

    def template_error(self, *values_files: Path, values: dict[str, Any] | None = None) -> str:
        out = self.run("template", *values_files, values=values)
        assert out.returncode != 0, f"rendering should have failed, got:\n{out.stdout[:2000]}"
        return out.stderr


@pytest.fixture(scope="session")
def helm() -> Helm:
    try:
        return find_helm()
    except HelmUnavailable as exc:
        pytest.skip(f"chart tests need a helm 3 binary: {exc}")


@pytest.fixture(scope="session")
def chart(helm: Helm) -> ChartRunner:
    return ChartRunner(helm)
