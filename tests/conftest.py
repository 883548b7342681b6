"""Fixtures and settings shared by every test package."""

import os
from pathlib import Path

# Triton reads TRITON_INTERPRET when it is imported and when a kernel is decorated. Any test
# module may import triton first (through kernels/, or torch and transformers probing for it),
# so the flag is set here, before collection and before torch is imported: without an NVIDIA
# device the kernels run in Triton's interpreter.
if not any(Path("/dev").glob("nvidia[0-9]*")):
    os.environ.setdefault("TRITON_INTERPRET", "1")

# pg_schema_url: a fresh PostgreSQL schema per test, as a --database-url for servers.
pytest_plugins = ["tests.support.postgres"]
