"""Per-user adjustments: what one user's feedback teaches the agent about that user only.

The shared agent scores every candidate; a user with feedback adds their own correction, a linear function
of the candidate's parts (its members, anchor, strategy, points, placement, fusion_dim, steps), so liking a
router braid lifts the other router braids for that user too. Feedback with a user id trains that user's
correction alone (normalised least mean squares towards the score the feedback implies): the shared agent
and every other user's decisions stay as they were.
"""

from __future__ import annotations

import torch

from meta.decision import Candidates


class Personal:
    def __init__(self, candidates: Candidates, lr: float = 0.5):
        self.lr = lr
        c = candidates
        discrete = c.config(0.0, 0.0)[:, :-2]  # (C, D): the choices' one-hots and sizes, not lr/temperature
        self.parts = torch.cat([c.members, c.anchor, discrete], -1)  # (C, F)
        self.weights: dict[str, torch.Tensor] = {}  # user -> (F,)

    def offsets(self, user: str | None) -> torch.Tensor | None:
        """(C,) what ``user``'s correction adds to each candidate's predicted score (None: no correction)."""
        w = self.weights.get(user) if user is not None else None
        return None if w is None else self.parts @ w

    def update(self, user: str, index: int, predicted: float, target: float) -> float:
        """Move ``user``'s correction so candidate ``index`` predicts closer to ``target`` (raw score scale);
        ``predicted`` is the shared agent's prediction for it. Returns the error before the update."""
        w = self.weights.setdefault(user, torch.zeros(self.parts.shape[1]))
        x = self.parts[index]
        error = target - (predicted + float(x @ w))
        w += self.lr * error * x / float(x @ x)
        return error

    def state(self) -> dict[str, list[float]]:
        return {u: w.tolist() for u, w in self.weights.items()}

    def restore(self, state: dict[str, list[float]]) -> None:
        width = self.parts.shape[1]
        self.weights = {u: torch.tensor(w) for u, w in state.items() if len(w) == width}
