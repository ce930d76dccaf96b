"""Run the project's benchmarks: ``python -m benchmarks [train|serve|workflow|drift ...]``.

With no names it runs all four in order (training first: the others reuse local mode's cached
model when one exists). Each writes its own file under benchmarks/results/.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "train": "benchmarks.train_benchmark",
    "serve": "benchmarks.serve_benchmark",
    "workflow": "benchmarks.workflow_benchmark",
    "drift": "benchmarks.drift_benchmark",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"== benchmark: {name}", flush=True)
        status = importlib.import_module(BENCHMARKS[name]).main([])
        if status:
            return status
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
