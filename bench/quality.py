"""braid-bench: zoo members alone vs braids of them, on every domain and on the mixture.

Each braid (anchor: prose-llama) trains its fusion on the same mixed-domain set, then reports held-out
perplexity per character (comparable across tokenizers), the trained-parameter share of the anchor, and the
decode-time ratio to its members run alone. Braid rows are the mean +- sd over fusion seeds (the zoo is one
bit-reproducible build, so a member alone has no spread).

    python bench/quality.py [--seeds 3] [--tiny] [--smoke-test]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import markdown_table, write_section  # noqa: E402
from braid import BraidedLLM, ModelWrapper  # noqa: E402
from braid.config import default_fusion_layers  # noqa: E402
from braid.fusion import split_strategy  # noqa: E402
from braid.generation import BraidSession  # noqa: E402
from braid.tokenview import visible_ends  # noqa: E402
from braid.train import recipe, train_fusion  # noqa: E402
from braid.zoo import build_zoo, zoo_spec  # noqa: E402
from braid.zoo.domains import DOMAINS, get_domain  # noqa: E402
from braid.zoo.evaluate import char_perplexity, member_logits  # noqa: E402

ANCHOR = "prose-llama"
DOCS = Path(__file__).resolve().parent.parent / "docs"
ALL = ("prose-llama", "code-qwen2", "arith-gpt2", "facts-mistral")
PLANS: list[tuple[tuple[str, ...], str]] = [
    (("prose-llama", "code-qwen2"), "output_router"),
    (("prose-llama", "arith-gpt2"), "output_router"),
    (("prose-llama", "facts-mistral"), "output_router"),
    (ALL, "output_router"),
    (ALL, "pointer"),
    (ALL, "calm+output_router"),
    (ALL, "learned_weighted"),  # hidden-state fusion alone: the previous best, for contrast
]


def held_out_sets(per_domain: int) -> dict[str, list[str]]:
    return {name: get_domain(name).held_out[:per_domain] for name in DOMAINS}


def mixed_train_set(per_domain: int, seed: int = 0) -> list[str]:
    texts = [t for name in DOMAINS for t in get_domain(name).train[:per_domain]]
    random.Random(seed).shuffle(texts)
    return texts


def evaluate(model, tokenizer, sets: dict[str, list[str]]) -> dict[str, float]:
    scores = {d: char_perplexity(member_logits(model), tokenizer, texts) for d, texts in sets.items()}
    scores["mixture"] = char_perplexity(
        member_logits(model), tokenizer, [t for ts in sets.values() for t in ts]
    )
    return scores


@torch.no_grad()
def decode_ratio(
    braided: BraidedLLM, text: str, prompt_tokens: int = 16, new_tokens: int = 16, alone: list | None = None
) -> float:
    """Braid decode time over the summed decode time of its members (or the models ``alone``) alone, on the
    same span of text: each decodes its own tokenization of the characters the anchor's new tokens cover."""
    anchor_ids = braided.tokenizer(text, add_special_tokens=False)["input_ids"][: prompt_tokens + new_tokens]
    session = BraidSession(braided)
    session.feed(torch.tensor([anchor_ids[:prompt_tokens]]))
    start = time.perf_counter()
    for t in anchor_ids[prompt_tokens:]:
        session.feed(torch.tensor([[t]]))
    braid_s = time.perf_counter() - start
    _, ends = visible_ends(braided.tokenizer, anchor_ids)
    models = braided.models if alone is None else alone
    alone_s = sum(member_span_s(m, text[: ends[prompt_tokens - 1]], text[: ends[-1]]) for m in models)
    return braid_s / alone_s


def member_span_s(member: ModelWrapper, prompt: str, full: str) -> float:
    ids = member.tokenizer(full)["input_ids"]
    n_prompt = max(1, len(member.tokenizer(prompt)["input_ids"]))
    cache = member.new_cache()
    member.forward(input_ids=torch.tensor([ids[:n_prompt]]), past_key_values=cache, use_cache=True,
                   output_hidden_states=False)  # fmt: skip
    start = time.perf_counter()
    for t in ids[n_prompt:]:
        member.forward(input_ids=torch.tensor([[t]]), past_key_values=cache, use_cache=True,
                       output_hidden_states=False)  # fmt: skip
    return time.perf_counter() - start


def memo_path(paths: dict[str, str], group, m: int, bridge) -> Path:
    """Where member ``group[m]``'s bridge memo lives: beside the zoo, keyed by the anchor, the settings and
    the bridge's own source, so a change to the bridge never reads stale distributions."""
    import hashlib

    source = sorted((ROOT / "braid" / "bridge").glob("*.py")) + [ROOT / "braid" / "tokenview.py"]
    key = hashlib.sha256(
        "|".join(
            [paths[group[0]], bridge.params.model_dump_json(), *(f.read_text() for f in source)]
        ).encode()
    ).hexdigest()[:16]
    return Path(paths[group[m]]).parent / "bridge-memo" / f"{group[m]}-{key}.pt"


def bridge_memos(braided: BraidedLLM, paths: dict[str, str], group, save: bool = False) -> None:
    """Read (or write) the memoised distributions of the braid's bridged members: computing them is most of
    a cross-tokenizer row's time, and they depend on the text alone."""
    for m, bridge in (braided.readout.bridges if braided.readout else {}).items():
        path = memo_path(paths, group, m, bridge)
        if save:
            path.parent.mkdir(exist_ok=True)
            bridge.save_memo(path)
        elif not bridge.memo:
            bridge.load_memo(path)


def train_braid(members, paths, group, strategy, train, seed: int, steps: int | None) -> BraidedLLM:
    depth = members[ANCHOR].num_layers
    braided = BraidedLLM(
        model_configs=[paths[n] for n in group], fusion_strategy=strategy, fusion_dim=16,
        fusion_layers=default_fusion_layers(depth, 2) if split_strategy(strategy)[0] else [],
        models=[members[n] for n in group],
    )  # fmt: skip
    bridge_memos(braided, paths, group)
    config = recipe(strategy).model_copy(update={"seed": seed, "progress": False, "eval_fraction": 0.0})
    if steps is not None:
        config = config.model_copy(update={"max_steps": steps})
    train_fusion(braided, train, config)
    return braided


def cell(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def run(
    smoke_test: bool = False,
    tiny: bool = False,
    seeds: int = 3,
    steps: int | None = None,
    plans: list[int] | None = None,
) -> list[list[str]]:
    """``plans``: indexes into PLANS to run (default all; a smoke test runs the first)."""
    tiny = tiny or smoke_test
    paths = build_zoo(tiny=tiny, progress=not smoke_test)
    sets = held_out_sets(4 if smoke_test else 40)
    train = mixed_train_set(8 if smoke_test else 200)
    steps = 3 if smoke_test else steps
    members = {name: ModelWrapper(path) for name, path in paths.items()}
    alone = {name: evaluate(m, m.tokenizer, sets) for name, m in members.items()}
    rows = [[n, "-", "-", *(f"{v:.3f}" for v in s.values()), "-", "1.000"] for n, s in alone.items()]
    results = []
    chosen = [PLANS[0]] if smoke_test else [PLANS[i] for i in plans] if plans else PLANS
    for group, strategy in chosen:
        start = time.time()
        runs = []
        for seed in range(seeds):
            braided = train_braid(members, paths, group, strategy, train, seed, steps)
            runs.append(evaluate(braided, braided.tokenizer, sets))
        bridge_memos(braided, paths, group, save=not smoke_test)
        share = braided.num_fusion_parameters() / members[ANCHOR].num_parameters
        ratio = decode_ratio(braided, sets["prose"][0], new_tokens=4 if smoke_test else 16)
        scores = {d: [r[d] for r in runs] for d in runs[0]}
        layers = str(braided.config.fusion_layers) if braided.config.fusion_layers else "-"
        rows.append(
            [
                "+".join(group),
                strategy,
                layers,
                *(cell(v) for v in scores.values()),
                f"{share:.2%}",
                f"{ratio:.3f}",
            ]
        )
        results.append((group, strategy, {d: statistics.fmean(v) for d, v in scores.items()}, share))
        print(" | ".join(rows[-1]), f"({time.time() - start:.0f}s)", flush=True)
    header = ["model", "strategy", "fusion layers", *sets, "mixture", "trained share", "decode ratio"]
    table = markdown_table(header, rows)
    print(table)
    if not smoke_test:
        report(table, rows, alone, results, tiny, seeds, steps, plans)
    return rows


def own_domain(member: str) -> str:
    return zoo_spec().member(member).domain


def summary(alone: dict, results: list) -> list[str]:
    best_mix = min(s["mixture"] for s in alone.values())
    best = min(results, key=lambda r: r[2]["mixture"])
    lines = [
        f"- Best member on the mixture: {best_mix:.3f}; best braid ({'+'.join(best[0])}, {best[1]}): "
        f"{best[2]['mixture']:.3f} = {best[2]['mixture'] / best_mix:.3f}x (target <= 0.85x).",
        "- Own-domain ratio of the best braid to each member it contains (target <= 1.02x): "
        + ", ".join(f"{n}: {best[2][own_domain(n)] / alone[n][own_domain(n)]:.3f}x" for n in best[0])
        + ".",
    ]
    pairs = [r for r in results if len(r[0]) == 2]
    if pairs:
        lines.append(
            "- Own-domain ratio of each pair to its expert: "
            + ", ".join(
                f"{r[0][1]} ({r[1]}): {r[2][own_domain(r[0][1])] / alone[r[0][1]][own_domain(r[0][1])]:.3f}x"
                for r in pairs
            )
            + "."
        )
    lines.append(
        f"- Trained parameters: {min(r[3] for r in results):.2%} to {max(r[3] for r in results):.2%} of the anchor (target <= 2%)."
    )
    return lines


def report(
    table: str,
    rows: list[list[str]],
    alone: dict,
    results: list,
    tiny: bool,
    seeds: int,
    steps: int | None,
    plans: list[int] | None = None,
) -> None:
    plot = plot_rows(rows)
    recipe_note = (
        "the measured recipe of `braid.train.recipe` per strategy" if steps is None else f"{steps} steps"
    )
    body = (
        f"Zoo: {'tiny' if tiny else 'full'} (`braid zoo build{' --tiny' if tiny else ''}`); anchor {ANCHOR}; fusion_dim 16; "
        f"{recipe_note} (batch 8) on a mixed set of 200 train texts per domain; 40 held-out texts per domain. "
        "Numbers are held-out perplexity **per character** (token perplexities are not comparable across "
        f"tokenizers); braid rows are the mean ± sd over {seeds} fusion seeds. Hidden-state strategies fuse at two "
        "evenly spaced anchor blocks; output-level ones after the last. Members with their own tokenizer "
        "(arith-gpt2: Unigram, facts-mistral: WordPiece) reach output-level strategies through the character-level "
        "bridge.\n\n"
        + table
        + "\n\n"
        + "\n".join(summary(alone, results))
        + skipped_note(plans)
        + f"\n\n![quality]({plot.relative_to(DOCS.parent)})"
    )
    write_section(
        "quality", "braid-bench: members vs braids (bench/quality.py)",
        "python bench/quality.py" + (" --tiny" if tiny else "") + f" --seeds {seeds}"
        + (f" --plans {','.join(map(str, plans))}" if plans else ""), body,
    )  # fmt: skip


def skipped_note(plans: list[int] | None) -> str:
    left = [f"{'+'.join(g)} {st}" for i, (g, st) in enumerate(PLANS) if plans and i not in plans]
    return f"\n- Not run this time (`--plans`): {'; '.join(left)}." if left else ""


def plot_rows(rows: list[list[str]]) -> Path:
    """Bar chart of mixture perplexity per row of the results table (log scale), saved to docs/quality.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def label(row: list[str]) -> str:
        if row[1] == "-":
            return row[0]
        short = "+".join(n.split("-")[0] for n in row[0].split("+"))
        return f"{short}\n{row[1]}"

    values = [float(r[-3].split(" ")[0]) for r in rows]
    members = sum(r[1] == "-" for r in rows)
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.6), 5))
    ax.bar(range(len(rows)), values, color=["#888"] * members + ["#2a7"] * (len(rows) - members))
    ax.axhline(min(values[:members]), color="k", ls="--", lw=0.8, label="best member")
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)), [label(r) for r in rows], rotation=90, fontsize=7)
    ax.set_ylabel("held-out perplexity per character, mixture (log)")
    ax.legend()
    fig.tight_layout()
    DOCS.mkdir(exist_ok=True)
    out = DOCS / "quality.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def recorded_rows() -> list[list[str]]:
    """The result rows of the quality section of BENCHMARKS.md."""
    from bench.report import BENCHMARKS

    text = BENCHMARKS.read_text()
    section = text[text.index("<!-- bench:quality -->") : text.index("<!-- /bench:quality -->")]
    lines = [
        line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| model")
    ]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke-test", action="store_true")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="default: the strategy's recipe")
    parser.add_argument(
        "--plans", type=lambda v: [int(i) for i in v.split(",")], default=None,
        help="comma-separated indexes into PLANS (default: all rows)",
    )  # fmt: skip
    parser.add_argument("--replot", action="store_true", help="redraw docs/quality.png from BENCHMARKS.md")
    args = parser.parse_args()
    if args.replot:
        print(plot_rows(recorded_rows()))
        sys.exit()
    run(
        smoke_test=args.smoke_test,
        tiny=args.tiny,
        seeds=1 if args.smoke_test else args.seeds,
        steps=args.steps,
        plans=args.plans,
    )
