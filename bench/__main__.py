"""``python -m bench``: run every benchmark (the introspection benchmark, then the soak run),
print their tables, write JSON to bench/results/."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import introspection, report, soak

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="seconds of load per throughput measurement in (a) (default 6)")
    parser.add_argument("--soak", action="store_true", help="run the soak run only")
    parser.add_argument("--soak-seconds", type=float, default=150.0,
                        help="seconds of load in the soak run (default 150; 0 skips it)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    missed = []
    if not args.soak:
        print("introspection benchmark: starting Redis, the bench bank, the AS and the floor under "
              "gunicorn ...", flush=True)
        figures = introspection.run(seconds=args.seconds)
        print()
        print(introspection.table(figures))
        print(f"\nwritten to {report.write(figures, RESULTS, 'introspection')}\n")
        missed += [name for name, part in figures.items()
                   if isinstance(part, dict) and part.get("met") is False]
    if args.soak_seconds > 0:
        print("soak run: `make run` under load, Redis and AS workers killed meanwhile ...", flush=True)
        figures = soak.run(seconds=args.soak_seconds)
        print()
        print(soak.table(figures))
        print(f"\nwritten to {report.write(figures, RESULTS, 'soak')}")
        missed += [] if figures["met"] else ["soak"]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
