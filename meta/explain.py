"""Explanations built from the agent's real numbers: the selector heads' probability of each chosen option,
the scorer's predictions, the runner-up, and the constraint that bound (if the unconstrained best was
excluded).

The decision is the scorer's (the best predicted score that meets the constraints); the selector heads are
the policy, which imitation and feedback train. Where they disagree the explanation says so: it names the
option the policy preferred and why the scorer's choice stood, instead of printing a low confidence with no
reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meta.calibration import share

if TYPE_CHECKING:
    from meta.agent import MetaBraider
    from meta.decision import BraidingDecision


def policy_view(agent: MetaBraider, out: Any, decision: BraidingDecision) -> list[tuple[str, float, Any]]:
    """Per part of ``decision``: (label, the policy's probability of the chosen option, the policy's own
    favourite for that part with its probability, or None when the chosen option is the favourite)."""
    s, names = agent.space, agent.names
    include = out.include[0].sigmoid()
    rows = []
    for n in decision.members:
        p = float(include[names.index(n)])
        rows.append((f"member {n}", p, None if p >= 0.5 else ("leave it out", 1 - p)))
    heads = [("anchor", out.anchor, tuple(names), decision.anchor)]
    heads += [
        ("strategy", out.strategy, s.strategies, decision.strategy),
        ("fusion points", out.points, s.fusion_points, decision.fusion_points),
        ("placement", out.placement, s.placements, decision.placement),
        ("fusion_dim", out.fusion_dim, s.fusion_dims, decision.fusion_dim),
    ]
    for label, logits, options, value in heads:
        probs = logits[0].softmax(-1)
        p, top = float(probs[options.index(value)]), int(probs.argmax())
        rows.append(
            (f"{label} {value}", p, None if options[top] == value else (options[top], float(probs[top])))
        )
    return rows


def explain(agent: MetaBraider, decision: BraidingDecision, info: dict[str, Any]) -> str:
    pred = info["pred"]
    order = pred[:, 0].argsort(descending=True).tolist()
    runner = next(j for j in order if j != info["index"])
    chosen = float(pred[info["index"], 0])
    lines = [
        f"Selected {' + '.join(decision.members)} (anchor {decision.anchor}), {decision.strategy} fusion at "
        f"{decision.fusion_points} {decision.placement} point(s), fusion_dim {decision.fusion_dim}: predicted "
        f"score {chosen:.3f} (quality {share(chosen, info['reference']):.2f} of the best "
        f"measured for this task type), {pred[info['index'], 1].exp():.2f} ms/token "
        f"(runner-up {pred[runner, 0]:.3f}; {info['feasible']} of {len(pred)} candidates feasible).",
    ]
    for label, p, preferred in policy_view(agent, info["out"], decision):
        line = f"- {label}: policy confidence {p:.2f}"
        if preferred is not None:
            line += (
                f"; the policy preferred {preferred[0]} ({preferred[1]:.2f}), but the scorer predicts this "
                "braid scores best" + (" within the constraints" if info["bound"] else "")
            )
        lines.append(line)
    if info.get("latency_at_risk"):
        lines.append(
            "- latency at risk: no candidate surely meets the latency limit (decode cost varies from task to "
            "task); this one is the closest to it, and meets it on its expected decode ms"
        )
    if info["bound"]:
        lines.append(f"- bound by {', '.join(info['bound'])}: the unconstrained best violates it")
    else:
        lines.append("- no constraint bound: this is also the unconstrained best")
    if info.get("user"):
        lines.append(f"- adjusted for user {info['user']!r} by their own feedback")
    return "\n".join(lines)
