"""braid-bench: zoo members alone vs braids of them, on every domain and on the mixture.

Each braid (anchor: prose-llama) trains its fusion on the same small mixed-domain set, then reports held-out
perplexity per character (comparable across tokenizers), the trained-parameter share of the anchor, and the
decode-time ratio to its members run alone.

    python bench/quality.py [--tiny] [--steps 200] [--smoke-test]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import markdown_table, write_section  # noqa: E402
from braid import BraidedLLM, ModelWrapper  # noqa: E402
from braid.config import default_fusion_layers  # noqa: E402
from braid.generation import BraidSession  # noqa: E402
from braid.tokenview import visible_ends  # noqa: E402
from braid.train import TrainConfig, train_fusion  # noqa: E402
from braid.zoo import build_zoo  # noqa: E402
from braid.zoo.domains import DOMAINS, get_domain  # noqa: E402
from braid.zoo.evaluate import char_perplexity, member_logits  # noqa: E402

ANCHOR = "prose-llama"
DOCS = Path(__file__).resolve().parent.parent / "docs"


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


def braid_plans(names: list[str], smoke: bool) -> list[tuple[tuple[str, ...], str, str]]:
    """(members, strategy, layer set): pairs, a triple and the whole zoo, with the anchor first."""
    experts = [n for n in names if n != ANCHOR]
    groups = [(ANCHOR, e) for e in experts] + [(ANCHOR, *experts[1:]), (ANCHOR, *experts)]
    if smoke:
        return [(groups[0], "learned_weighted", "last")]
    # every strategy at two spread points; the single last-block point for learned_weighted as a contrast
    plans = [(g, s, "spread") for g in groups for s in ("learned_weighted", "attention", "router")]
    return plans + [(g, "learned_weighted", "last") for g in groups]


@torch.no_grad()
def decode_ratio(braided: BraidedLLM, text: str, prompt_tokens: int = 16, new_tokens: int = 16) -> float:
    """Braid decode time over the summed decode time of its members alone, on the same span of text:
    each member alone decodes its own tokenization of the characters the anchor's new tokens cover."""
    anchor_ids = braided.tokenizer(text, add_special_tokens=False)["input_ids"][: prompt_tokens + new_tokens]
    session = BraidSession(braided)
    session.feed(torch.tensor([anchor_ids[:prompt_tokens]]))
    start = time.perf_counter()
    for t in anchor_ids[prompt_tokens:]:
        session.feed(torch.tensor([[t]]))
    braid_s = time.perf_counter() - start
    _, ends = visible_ends(braided.tokenizer, anchor_ids)
    alone_s = sum(member_span_s(m, text[: ends[prompt_tokens - 1]], text[: ends[-1]]) for m in braided.models)
    return braid_s / alone_s


def member_span_s(member: ModelWrapper, prompt: str, full: str) -> float:
    ids = member.tokenizer(full)["input_ids"]
    n_prompt = max(1, len(member.tokenizer(prompt)["input_ids"]))
    cache = member.new_cache()
    member.forward(
        input_ids=torch.tensor([ids[:n_prompt]]),
        past_key_values=cache,
        use_cache=True,
        output_hidden_states=False,
    )
    start = time.perf_counter()
    for t in ids[n_prompt:]:
        member.forward(
            input_ids=torch.tensor([[t]]), past_key_values=cache, use_cache=True, output_hidden_states=False
        )
    return time.perf_counter() - start


def run(smoke_test: bool = False, tiny: bool = False, steps: int = 200) -> list[list[str]]:
    tiny = tiny or smoke_test
    torch.manual_seed(0)
    paths = build_zoo(tiny=tiny, progress=not smoke_test)
    sets = held_out_sets(4 if smoke_test else 40)
    train = mixed_train_set(8 if smoke_test else 200)
    steps = 3 if smoke_test else steps
    members = {name: ModelWrapper(path) for name, path in paths.items()}
    alone = {name: evaluate(m, m.tokenizer, sets) for name, m in members.items()}
    header = ["model", "strategy", "fusion layers", *sets, "mixture", "trained share", "decode ratio"]
    rows = [
        [name, "-", "-", *(f"{v:.3f}" for v in scores.values()), "-", "1.000"]
        for name, scores in alone.items()
    ]
    results = []
    for group, strategy, layer_set in braid_plans(list(paths), smoke_test):
        depth = members[ANCHOR].num_layers
        layers = [depth - 1] if layer_set == "last" else default_fusion_layers(depth, 2)
        braided = BraidedLLM(
            model_configs=[paths[n] for n in group], fusion_strategy=strategy, fusion_layers=layers,
            fusion_dim=16, models=[members[n] for n in group],
        )  # fmt: skip
        start = time.time()
        train_fusion(
            braided,
            train,
            TrainConfig(
                max_steps=steps,
                learning_rate=3e-3,
                batch_size=8,
                max_length=128,
                progress=False,
                eval_fraction=0.0,
            ),
        )
        scores = evaluate(braided, braided.tokenizer, sets)
        share = braided.num_fusion_parameters() / members[ANCHOR].num_parameters
        ratio = decode_ratio(braided, sets["prose"][0], new_tokens=4 if smoke_test else 16)
        rows.append(
            [
                "+".join(group),
                strategy,
                str(layers),
                *(f"{v:.3f}" for v in scores.values()),
                f"{share:.2%}",
                f"{ratio:.3f}",
            ]
        )
        results.append((group, strategy, layers, scores, share))
        print(" | ".join(rows[-1]), f"({time.time() - start:.0f}s)", flush=True)
    table = markdown_table(header, rows)
    print(table)
    if not smoke_test:
        report(table, rows, alone, results, tiny, steps)
    return rows


def report(table: str, rows: list[list[str]], alone: dict, results: list, tiny: bool, steps: int) -> None:
    best_mix = min(s["mixture"] for s in alone.values())
    best_braid = min(results, key=lambda r: r[3]["mixture"])
    own = {n: s[get_domain_name(n)] for n, s in alone.items()}
    lines = [
        f"- Best member on the mixture: {best_mix:.3f}; best braid ({'+'.join(best_braid[0])}, {best_braid[1]}): "
        f"{best_braid[3]['mixture']:.3f} = {best_braid[3]['mixture'] / best_mix:.3f}x (target <= 0.9x).",
        "- Own-domain ratio of the best braid to each member it contains (target <= 1.02x): "
        + ", ".join(f"{n}: {best_braid[3][get_domain_name(n)] / own[n]:.3f}x" for n in best_braid[0])
        + ".",
        f"- Trained parameters: {min(r[4] for r in results):.2%} to {max(r[4] for r in results):.2%} of the anchor (target <= 2%).",
    ]
    plot = plot_rows(rows)
    body = (
        f"Zoo: {'tiny' if tiny else 'full'} (`braid zoo build{' --tiny' if tiny else ''}`); anchor {ANCHOR}; fusion_dim 16; "
        f"{steps} fusion steps (batch 8) on a mixed set of 200 train texts per domain; 40 held-out texts per "
        "domain. Numbers are held-out perplexity **per character** (token perplexities are not comparable across "
        "tokenizers). Fusion layers 'last' = the anchor's last block; otherwise two evenly spaced blocks.\n\n"
        + table
        + "\n\n"
        + "\n".join(lines)
        + f"\n\n![quality]({plot.relative_to(DOCS.parent)})"
    )
    write_section(
        "quality",
        "braid-bench: members vs braids (bench/quality.py)",
        "python bench/quality.py" + (" --tiny" if tiny else ""),
        body,
    )


def get_domain_name(member: str) -> str:
    from braid.zoo import zoo_spec

    return zoo_spec().member(member).domain


def plot_rows(rows: list[list[str]]) -> Path:
    """Bar chart of mixture perplexity per row of the results table (log scale), saved to docs/quality.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def label(row: list[str]) -> str:
        if row[1] == "-":
            return row[0]
        short = "+".join(n.split("-")[0] for n in row[0].split("+"))
        return f"{short}\n{row[1][:6]} {row[2].count(',') + 1}pt"

    values = [float(r[-3]) for r in rows]
    members = sum(r[1] == "-" for r in rows)
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.45), 5))
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
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--replot", action="store_true", help="redraw docs/quality.png from BENCHMARKS.md")
    args = parser.parse_args()
    if args.replot:
        print(plot_rows(recorded_rows()))
        sys.exit()
    run(smoke_test=args.smoke_test, tiny=args.tiny, steps=args.steps)
