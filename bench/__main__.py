"""``python -m bench``: run every benchmark, print a table, write JSON to bench/results/."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import introspection, report

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="seconds of load per throughput measurement in (a) (default 6)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    print("introspection benchmark: starting Redis, the bench bank, the AS and the floor under "
          "gunicorn ...", flush=True)
    figures = introspection.run(seconds=args.seconds)
    print()
    print(introspection.table(figures))
    path = report.write(figures, RESULTS, "introspection")
    print(f"\nwritten to {path}")
    missed = [name for name, part in figures.items() if isinstance(part, dict) and part.get("met") is False]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
