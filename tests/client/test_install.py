"""The SDK installs into a fresh virtual environment with its real dependencies only
(httpx, pydantic): no torch, triton or transformers come with it."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

from tests.client.fixtures import CLIENT_SRC

CHECK = """
import importlib.util, sys
for heavy in ("torch", "triton", "transformers", "numpy"):
    assert importlib.util.find_spec(heavy) is None, heavy + " was installed"
import sigreward_client
from sigreward_client import RewardClient, AsyncRewardClient
import sigreward_client.trl, sigreward_client.verl
assert "torch" not in sys.modules
print("ok", sigreward_client.__version__, sigreward_client.__file__)
"""


def test_installs_without_torch(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # A copy, so the build never writes into the source tree (build/, *.egg-info).
    source = tmp_path / "src"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import shutil,sys; shutil.copytree(sys.argv[1], sys.argv[2], "
            "ignore=shutil.ignore_patterns('build', '*.egg-info', '__pycache__'))",
            str(CLIENT_SRC),
            str(source),
        ],
        check=True,
    )
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    check = subprocess.run(
        [str(python), "-c", CHECK], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.startswith("ok 0.1.0")
    assert str(env_dir) in check.stdout  # imported from the venv, not the source tree
    torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True)
    assert torch.returncode != 0 and "No module named 'torch'" in torch.stderr
