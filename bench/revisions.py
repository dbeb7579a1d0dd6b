"""Decode overhead of this checkout against another revision, side by side in one run.

A refactor must not cost speed, and a benchmark re-run on another day measures the machine as much as the
code (this 2-core machine's members-alone times vary by 25% between days). So both revisions run here, in
turn (base, this, base, this, ...), each in a fresh process on the same members (bench/core.py's medium
Llama and Qwen2 shapes, fusion_dim 128, 24 decode tokens, median of 3), and the table compares their
braid / members-alone ratios.

    python bench/revisions.py --base 39778e3 [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import markdown_table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLANS = [("calm", 1), ("calm", 4), ("attention", 2), ("output_router", 0)]
CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(1)
from bench.core import build_members, measure
root = Path(sys.argv[2])
if not (root / "qwen2-768x6-bpe" / "config.json").exists():
    build_members(root, 768, 6)
paths = [str(root / f"{f}-768x6-bpe") for f in ("llama", "qwen2")]
plans = json.loads(sys.argv[3])
print(json.dumps({f"{s}/{p}": measure(paths, s, p, 24, 3) for s, p in plans}))
"""


def run(repo: Path, members: Path) -> dict[str, list[float]]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(repo), str(members), json.dumps(PLANS)],
        capture_output=True, text=True, check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the revision to compare against (a commit)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "-f", "--detach", str(base), args.base], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            ratios: dict[str, dict[str, list[float]]] = {"base": {}, "this": {}}
            for r in range(args.rounds):
                for name, repo in (("base", base), ("this", ROOT)):
                    for plan, (alone, braid) in run(repo, Path(tmp) / "members").items():
                        ratios[name].setdefault(plan, []).append(braid / alone)
                print(f"round {r + 1}/{args.rounds}", {k: v for k, v in ratios["this"].items()}, flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    rows = []
    for plan in ratios["this"]:
        b, t = statistics.median(ratios["base"][plan]), statistics.median(ratios["this"][plan])
        spread = max(ratios["base"][plan]) - min(ratios["base"][plan])
        rows.append([plan, f"{b:.3f}", f"{t:.3f}", f"{t - b:+.3f}", f"{spread:.3f}"])
    header = ["strategy/points", f"ratio at {args.base}", f"ratio at {head.stdout.strip()}", "difference",
              "base's own spread"]  # fmt: skip
    note = (
        f"Braid / members-alone decode time, 2 medium members, median of {args.rounds} rounds run in turn. "
        "A difference inside the base's own spread across rounds is noise."
    )
    write_section("revisions", "Decode overhead against an earlier revision (bench/revisions.py)",
                  f"python bench/revisions.py --base {args.base} --rounds {args.rounds}",
                  markdown_table(header, rows) + "\n\n" + note)  # fmt: skip


if __name__ == "__main__":
    main()
