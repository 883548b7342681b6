"""``python -m sigreward ...``: the same command line as the ``sigreward`` script."""

from sigreward.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
