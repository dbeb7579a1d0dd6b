"""What every example shares: the local zoo (four small specialists trained on this machine, cached under
$BRAID_CACHE; the first run builds it in about half a minute). Pass --full for the larger zoo."""

from __future__ import annotations

import sys


def zoo() -> dict[str, str]:
    """{name: checkpoint directory}: prose-llama, code-qwen2, arith-gpt2, facts-mistral."""
    from braid.zoo import build_zoo

    return build_zoo(tiny="--full" not in sys.argv, progress=True)
