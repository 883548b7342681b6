"""The distribution installs one import package, ``sigreward`` (``service/`` is ``sigreward``,
``kernels/`` is ``sigreward.kernels``), so it sits next to Hugging Face's ``kernels`` package,
which transformers imports when it is installed, without either overwriting the other."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT, pyproject

HF_KERNELS_VERSION = "0.17.2"

CHECK = """
import importlib.util, sys
import kernels, sigreward, sigreward.kernels, torch
from sigreward.kernels import RaggedOffsets, kernel_backend, significance_postprocess
assert kernels.__file__.startswith(sys.argv[1]), kernels.__file__
assert sigreward.kernels.__file__.startswith(sys.argv[1]), sigreward.kernels.__file__
assert hasattr(kernels, "get_kernel"), "the hub package was shadowed"
bounds = torch.tensor([0, 1], dtype=torch.int32)  # one token, one word, one segment, one sample
out = significance_postprocess(torch.zeros(1), RaggedOffsets(bounds, bounds, bounds), 0.5)
assert kernel_backend("cpu") == "torch"
import importlib.metadata, transformers
assert importlib.metadata.version("kernels") == sys.argv[2]
print("ok", kernels.__file__, sigreward.kernels.__file__, int(out.significant[0]))
"""


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, **kwargs)  # type: ignore[call-overload]


def test_package_list_names_every_folder() -> None:
    """Every folder of Python modules under service/ and kernels/ is in the explicit list."""
    tool = pyproject()["tool"]["setuptools"]
    assert tool["package-dir"] == {"sigreward": "service", "sigreward.kernels": "kernels"}
    found = {"sigreward.kernels"} | {
        ".".join(("sigreward", *p.parent.relative_to(ROOT / "service").parts))
        for p in (ROOT / "service").rglob("__init__.py")
    }
    assert set(tool["packages"]) == found


@pytest.mark.slow
def test_wheel_holds_only_sigreward_and_installs_beside_hf_kernels(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("sigreward-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"sigreward", "sigreward-0.1.0.dist-info"}, tops
    names = zipfile.ZipFile(wheel).namelist()
    assert "sigreward/kernels/significance.py" in names
    assert "sigreward/ui/static/index.html" in names

    # A fresh environment with Hugging Face's kernels (and its own dependencies) and our wheel;
    # torch and transformers come from this environment's site-packages, after the fresh one.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    hub = _run([*pip, f"kernels=={HF_KERNELS_VERSION}"])
    assert hub.returncode == 0, hub.stderr[-3000:]
    ours = _run([*pip, "--no-deps", str(wheel)])
    assert ours.returncode == 0, ours.stderr[-3000:]
    fresh_site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [fresh_site.stdout.strip(), sysconfig.get_paths()["purelib"]]
        ),
    }
    check = _run(
        [str(python), "-c", CHECK, fresh_site.stdout.strip(), HF_KERNELS_VERSION],
        cwd=tmp_path,
        env=env,
    )
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.startswith("ok"), check.stdout
