"""Wall time of building the zoo from nothing (fresh cache dirs), tiny and full.

python bench/zoo_build.py [--smoke-test]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import markdown_table, write_section  # noqa: E402
from braid.zoo import build_zoo, load_cards  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke-test", action="store_true", help="tiny only, no BENCHMARKS.md update")
    args = parser.parse_args()
    rows = []
    for tiny, limit in ((True, 120), (False, 1200))[: 1 if args.smoke_test else 2]:
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            build_zoo(tiny=tiny, cache_dir=cache, progress=False)
            seconds = time.perf_counter() - start
            params = sum(c["parameters"] for c in load_cards(tiny, cache))
        rows.append(
            [
                "tiny" if tiny else "full",
                f"{params:,}",
                f"{seconds:.0f}",
                str(limit),
                "yes" if seconds <= limit else "no",
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(
        ["zoo", "parameters (all members)", "build seconds", "limit seconds", "within"], rows
    )
    print(table)
    if not args.smoke_test:
        body = (
            "Fresh cache, tokenizers and all four members trained and evaluated, model cards written.\n\n"
            + table
        )
        write_section("zoo", "Zoo build time (bench/zoo_build.py)", "python bench/zoo_build.py", body)


if __name__ == "__main__":
    main()
