"""``python -m bench.study [--quick]``: run the GRPO length-reward study and write its report."""

from bench.study.study import main

if __name__ == "__main__":  # spawned run workers import this module too
    raise SystemExit(main())
