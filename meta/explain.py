"""Explanations built from the agent's real numbers: the selector heads' probability of each chosen option,
the scorer's predictions, the runner-up, and the constraint that bound (if the unconstrained best was
excluded)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meta.agent import MetaBraider
    from meta.decision import BraidingDecision


def choice_probabilities(agent: MetaBraider, out: Any, decision: BraidingDecision) -> dict[str, float]:
    """Probability the policy heads give each part of ``decision``."""
    s, names = agent.space, agent.names
    include = out.include[0].sigmoid()
    probs = {f"member {n}": float(include[names.index(n)]) for n in decision.members}
    probs[f"anchor {decision.anchor}"] = float(out.anchor[0].softmax(-1)[names.index(decision.anchor)])
    for label, logits, options, value in (
        ("strategy", out.strategy, s.strategies, decision.strategy),
        ("fusion points", out.points, s.fusion_points, decision.fusion_points),
        ("placement", out.placement, s.placements, decision.placement),
        ("fusion_dim", out.fusion_dim, s.fusion_dims, decision.fusion_dim),
    ):  # fmt: skip
        probs[f"{label} {value}"] = float(logits[0].softmax(-1)[options.index(value)])
    return probs


def explain(agent: MetaBraider, decision: BraidingDecision, info: dict[str, Any]) -> str:
    pred = info["pred"]
    order = pred[:, 0].argsort(descending=True).tolist()
    runner = next(j for j in order if j != info["index"])
    lines = [
        f"Selected {' + '.join(decision.members)} (anchor {decision.anchor}), {decision.strategy} fusion at "
        f"{decision.fusion_points} {decision.placement} point(s), fusion_dim {decision.fusion_dim}: predicted "
        f"score {pred[info['index'], 0]:.3f}, {pred[info['index'], 1].exp():.2f} ms/token "
        f"(runner-up {pred[runner, 0]:.3f}; {info['feasible']} of {len(pred)} candidates feasible).",
    ]
    for label, p in choice_probabilities(agent, info["out"], decision).items():
        lines.append(f"- {label}: policy confidence {p:.2f}")
    if info["bound"]:
        lines.append(f"- bound by {', '.join(info['bound'])}: the unconstrained best violates it")
    else:
        lines.append("- no constraint bound: this is also the unconstrained best")
    return "\n".join(lines)
