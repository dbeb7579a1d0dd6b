"""Braids of braids (#25 part 1): two inner braids over zoo members of different domains, braided into an
outer braid, against the members alone, each inner braid and the flat braid of all four members.

Each inner braid trains on its own two domains; the outer braid (inner braids frozen) and the flat braid
train on all four. Numbers are held-out perplexity per character; the mixture is the union of the inner
braids' domains. Trained parameters count what each braid's own training updated; the decode ratio is a
braid's decode time over the summed time of the single models it runs (its leaves) alone.

    python bench/hierarchy.py [--seeds 1] [--smoke-test]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.quality import bridge_memos, decode_ratio, evaluate, held_out_sets  # noqa: E402
from bench.report import markdown_table, write_section  # noqa: E402
from braid import BraidedLLM, ModelWrapper  # noqa: E402
from braid.nested import BraidMember  # noqa: E402
from braid.train import recipe, train_fusion  # noqa: E402
from braid.zoo import build_zoo, zoo_spec  # noqa: E402
from braid.zoo.domains import get_domain  # noqa: E402

INNER = {"prose+facts": ("prose-llama", "facts-mistral"), "code+arith": ("code-qwen2", "arith-gpt2")}
STRATEGY = "output_router"  # the best strategy of bench/quality.py; inner braids share one tokenizer


def train_texts(domains: list[str], per_domain: int, seed: int = 0) -> list[str]:
    texts = [t for d in domains for t in get_domain(d).train[:per_domain]]
    random.Random(seed).shuffle(texts)
    return texts


def domains_of(names: tuple[str, ...]) -> list[str]:
    return [zoo_spec().member(n).domain for n in names]


def trained(braided: BraidedLLM, texts: list[str], seed: int, steps: int | None) -> BraidedLLM:
    config = recipe(STRATEGY, seed=seed, progress=False, eval_fraction=0.0)
    if steps is not None:
        config = config.model_copy(update={"max_steps": steps})
    train_fusion(braided, texts, config)
    return braided


def flat_braid(members: dict[str, ModelWrapper], paths: dict[str, str], names: tuple[str, ...]) -> BraidedLLM:
    braided = BraidedLLM(
        model_configs=[paths[n] for n in names], fusion_strategy=STRATEGY, fusion_layers=[], fusion_dim=16,
        models=[members[n] for n in names],
    )  # fmt: skip
    bridge_memos(braided, paths, names)
    return braided


def leaves(braided: BraidedLLM) -> list[ModelWrapper]:
    out = []
    for m in braided.models:
        out += leaves(m.braid) if isinstance(m, BraidMember) else [m]
    return out


def one_seed(members, paths, sets, per_domain: int, seed: int, steps: int | None, root: Path) -> dict:
    """Per braid row: (scores per domain and mixture, trained parameters, decode ratio)."""
    every = tuple(n for group in INNER.values() for n in group)
    out, inner = {}, {}
    for name, group in INNER.items():
        braided = trained(
            flat_braid(members, paths, group), train_texts(domains_of(group), per_domain), seed, steps
        )
        braided.save_pretrained(root / name)
        inner[name] = braided
        out[name] = braided
    outer = BraidedLLM(
        model_configs=[str(root / name) for name in INNER], fusion_strategy=STRATEGY, fusion_layers=[],
        fusion_dim=16, models=[BraidMember(b, root / name) for name, b in inner.items()],
    )  # fmt: skip
    union = train_texts(domains_of(every), per_domain)
    out[" + ".join(f"[{n}]" for n in INNER)] = trained(outer, union, seed, steps)
    out["flat: " + "+".join(every)] = trained(flat_braid(members, paths, every), union, seed, steps)
    text = sets["prose"][0]
    return {
        name: (
            evaluate(b, b.tokenizer, sets),
            b.num_fusion_parameters(),
            decode_ratio(b, text, new_tokens=4 if steps == 3 else 16, alone=leaves(b)),
        )
        for name, b in out.items()
    }


def run(smoke_test: bool = False, seeds: int = 1) -> str:
    paths = build_zoo(tiny=smoke_test, progress=not smoke_test)
    sets = held_out_sets(4 if smoke_test else 40)
    members = {name: ModelWrapper(path) for name, path in paths.items()}
    rows = [
        [n, *(f"{v:.3f}" for v in evaluate(m, m.tokenizer, sets).values()), "-", "1.000"]
        for n, m in members.items()
    ]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            start = time.time()
            runs.append(
                one_seed(
                    members,
                    paths,
                    sets,
                    8 if smoke_test else 200,
                    seed,
                    3 if smoke_test else None,
                    Path(tmp) / str(seed),
                )
            )
            print(f"seed {seed}: {time.time() - start:.0f}s", flush=True)
    for name in runs[0]:
        scores = {d: [r[name][0][d] for r in runs] for d in runs[0][name][0]}
        cells = [
            f"{statistics.fmean(v):.3f}" + (f" ± {statistics.stdev(v):.3f}" if len(v) > 1 else "")
            for v in scores.values()
        ]
        rows.append(
            [name, *cells, f"{runs[0][name][1]:,}", f"{statistics.fmean(r[name][2] for r in runs):.3f}"]
        )
    table = markdown_table(["model", *sets, "mixture", "trained params", "decode ratio"], rows)
    print(table)
    if not smoke_test:
        report(table, runs, members, seeds)
    return table


def report(table: str, runs: list[dict], members: dict, seeds: int) -> None:
    names = list(runs[0])
    mix = {n: statistics.fmean(r[n][0]["mixture"] for r in runs) for n in names}
    inner, outer, flat = names[:2], names[2], names[3]
    anchor = members[INNER[next(iter(INNER))][0]].num_parameters
    lines = [
        f"- Outer braid on the union: {mix[outer]:.3f}; "
        + ", ".join(f"{n}: {mix[n]:.3f} ({mix[outer] / mix[n]:.3f}x)" for n in inner)
        + f"; beats each inner braid: {'yes' if all(mix[outer] < mix[n] for n in inner) else 'no'}.",
        f"- Flat braid of all four members: {mix[flat]:.3f} (outer / flat = {mix[outer] / mix[flat]:.3f}x).",
        f"- Trained parameters of the outer braid: {runs[0][outer][1]:,} ({runs[0][outer][1] / anchor:.3%} of "
        f"the innermost anchor, {next(iter(INNER.values()))[0]}), its inner braids frozen.",
    ]
    body = (
        f"Full zoo; {STRATEGY} at every level, fusion_dim 16, the measured recipe of `braid.train.recipe` "
        f"(batch 8); inner braids train on 200 texts of each of their domains, the outer and the flat braid on "
        f"200 of each of the four; 40 held-out texts per domain; held-out perplexity per character, mean over "
        f"{seeds} seed(s). Inner braids: "
        + "; ".join(f"{n} = {' + '.join(g)} (anchor {g[0]})" for n, g in INNER.items())
        + ".\n\n"
        + table
        + "\n\n"
        + "\n".join(lines)
    )
    write_section(
        "hierarchy",
        "Braids of braids (bench/hierarchy.py)",
        f"python bench/hierarchy.py --seeds {seeds}",
        body,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    run(args.smoke_test, args.seeds)
