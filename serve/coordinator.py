"""``Coordinator``: one query in, one answer out, with the braid the meta-braider picks, the memory it recalls
and the tools it calls.

A turn is: decide the braid (pinned, or the meta-braider's choice under the request's constraints) -> recall
(the conversation's recent messages, semantically close messages and documents) -> tools (the planner's calls;
fetched pages are stored as documents) -> build the prompt -> generate -> store the exchange and log the response
for feedback. ``prepare`` / ``finish`` split the turn around generation so the HTTP layer can stream it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from braid.sampling import SamplingParams
from meta.requests import infer_task
from serve.braids import DEFAULT, BraidFactory, LocalBraids
from serve.online import OnlineMeta
from serve.planner import ModelPlanner, RulePlanner, ToolCall, supports_tool_calls
from serve.prompt import build_prompt
from serve.protocols import BraidSource, Memory, ResponseLog, Tools

if TYPE_CHECKING:
    from braid.braided import BraidedLLM
    from meta.agent import MetaBraider

DEFAULT_MAX_NEW_TOKENS = 64  # a turn's length when the request names none


class UnknownModel(ValueError):
    pass


class AlreadyRated(Exception):
    """A response takes one rating: a replayed one would apply a second online update (HTTP 409)."""


class RunResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    response_id: str
    answer: str
    model: str = Field(description="the braid's key: a pinned name or the decided structure")
    decision: dict | None = None
    explanation: str | None = None
    task: dict | None = None
    tool_calls: list[dict] = []
    memory_hits: list[dict] = []
    conversation_id: str | None = None
    timings: dict[str, float] = Field(default_factory=dict, description="milliseconds per stage")
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Turn:
    query: str
    key: str
    prompt: str
    params: SamplingParams
    response_id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    decision: Any = None
    explanation: str | None = None
    task: dict | None = None
    conversation_id: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    memory_hits: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    owner: str | None = None  # who may rate the answer (``feedback``)


class Coordinator:
    """``Coordinator(braided_model, memory_manager, tool_executor, meta_braider)`` as the seed writes it;
    ``braids`` (a ``BraidSource``) replaces the in-process braid cache, ``responses`` logs answers for
    feedback."""

    def __init__(
        self,
        braided_model: BraidedLLM | None = None,
        memory_manager: Memory | None = None,
        tool_executor: Tools | None = None,
        meta_braider: MetaBraider | OnlineMeta | None = None,
        *,
        braids: BraidSource | None = None,
        responses: ResponseLog | None = None,
        planner: str = "auto",
        history_turns: int = 6,
        recall_k: int = 3,
        cache_size: int = 2,
        default_model: str | None = None,
    ):
        if braided_model is None and meta_braider is None and braids is None:
            raise ValueError("Coordinator needs a braided_model, a meta_braider, or braids to generate with")
        if planner not in ("auto", "rules", "model"):
            raise ValueError(f"planner must be one of auto, rules, model; got {planner!r}")
        self.meta = meta_braider if isinstance(meta_braider, OnlineMeta) or meta_braider is None else (
            OnlineMeta(meta_braider)
        )  # fmt: skip
        paths = self.meta.agent.paths if self.meta else {}
        grid = self.meta.agent.candidates.keys() if self.meta else None
        searched = self.meta.agent.architectures if self.meta else None
        self.braids: BraidSource = braids or LocalBraids(
            BraidFactory(paths, default=braided_model, grid=grid, architectures=searched), cache_size
        )
        self.default_key = default_model or (
            DEFAULT if braided_model is not None or self.meta is None else "auto"
        )
        self.memory, self.tools, self.responses = memory_manager, tool_executor, responses
        self.planner, self.history_turns, self.recall_k = planner, history_turns, recall_k

    # -- the whole turn ---------------------------------------------------------------------------------------
    def run(
        self,
        query: str,
        use_memory: bool = True,
        use_tools: bool = True,
        conversation_id: str | None = None,
        constraints: dict | None = None,
        **options: Any,
    ) -> RunResult:
        """Answer ``query``. ``options``: model (a pinned braid or "auto"), task (the meta-braider's task
        info), history (earlier messages), and generation settings (max_new_tokens, temperature, top_p, stop,
        seed)."""
        turn = self.prepare(query, use_memory, use_tools, conversation_id, constraints, **options)
        start = time.perf_counter()
        out = self.braids.generate(turn.key, turn.prompt, turn.params)
        turn.timings["generate"] = _ms(start)
        return self.finish(turn, out.text, out.prompt_tokens, out.completion_tokens)

    def stream(self, turn: Turn) -> Iterator[str]:
        start = time.perf_counter()
        yield from self.braids.stream(turn.key, turn.prompt, turn.params)
        turn.timings["generate"] = _ms(start)

    # -- before generation ------------------------------------------------------------------------------------
    def prepare(
        self,
        query: str,
        use_memory: bool = True,
        use_tools: bool = True,
        conversation_id: str | None = None,
        constraints: dict | None = None,
        *,
        model: str | None = None,
        task: dict | None = None,
        history: list[dict] | None = None,
        owner: str | None = None,
        user: str | None = None,
        **generation: Any,
    ) -> Turn:
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query is empty")
        start = time.perf_counter()
        key, decision, explanation, task_info = self.decide(query, model, task, constraints or {}, user)
        turn = Turn(query, key, "", SamplingParams(**_generation(generation, decision)), decision=decision,
                    explanation=explanation, task=task_info, started=start, owner=owner)  # fmt: skip
        turn.timings["decide"] = _ms(start)
        recent, documents = list(history or []), []
        if use_memory and self.memory is not None:
            start = time.perf_counter()
            turn.conversation_id = self._conversation(conversation_id)
            recent += self.memory.get_conversation_history(turn.conversation_id)[-2 * self.history_turns :]
            turn.memory_hits, documents = self._recall(query, turn.conversation_id)
            turn.timings["memory"] = _ms(start)
        if use_tools and self.tools is not None:
            start = time.perf_counter()
            turn.tool_calls = self._plan(query, key)
            self._store_fetched(turn.tool_calls) if self.memory is not None and use_memory else None
            turn.timings["tools"] = _ms(start)
        results = [{"name": c.name, "text": c.text} for c in turn.tool_calls]
        turn.prompt = build_prompt(query, [_role(m) for m in recent], documents, results)
        return turn

    def decide(
        self, query: str, model: str | None, task: dict | None, constraints: dict, user: str | None = None
    ) -> tuple[str, Any, str | None, dict | None]:
        """(braid key, decision, explanation, task): a pinned braid when ``model`` names one, else the
        meta-braider's choice for the task (inferred from the query when not given), with ``user``'s own
        correction when one is named (``meta.personal``)."""
        model = model or self.default_key
        if model != "auto":
            if not self.braids.known(model):
                raise UnknownModel(f"unknown model {model!r}; available: {self.models()}")
            self.braids.check(model)  # a client-named structure: allowed and within limits, before building
            return model, None, None, task
        if self.meta is None:
            raise UnknownModel(f"model 'auto' needs a meta-braider; available: {self.models()}")
        task_info = dict(task) if task else infer_task(query)
        decision, explanation = self.meta.decide(task_info, user=user, **constraints)
        return decision.served_key(), decision, explanation, task_info

    def models(self) -> list[str]:
        names = ["auto"] if self.meta is not None else []
        names += [DEFAULT] if self.default_key == DEFAULT else []
        return names + sorted(self.braids.pinned_names())

    def _conversation(self, conversation_id: str | None) -> str:
        # creating is idempotent on the id: an existing conversation is kept as it is
        return self.memory.create_conversation(conversation_id=conversation_id)

    def _recall(self, query: str, conversation_id: str) -> tuple[list[dict], list[dict]]:
        messages = self.memory.semantic_search_messages(query, top_k=self.recall_k)
        documents = self.memory.semantic_search_documents(query, top_k=self.recall_k)
        hits = [{k: h[k] for k in ("kind", "id", "score", "text", "metadata")} for h in messages + documents]
        docs = [{"title": h["metadata"].get("title"), "url": h["metadata"].get("url"), "content": h["text"]}
                for h in documents]  # fmt: skip
        return hits, docs

    def _plan(self, query: str, key: str) -> list[ToolCall]:
        context = self.braids.planner_context(key) if self.planner != "rules" else None
        if self.planner == "model" and context is None:
            raise ValueError("planner 'model' needs the braids in this process (deployment.colocate)")
        if context is not None and (self.planner == "model" or supports_tool_calls(context[0])):
            tokenizer, generate = context
            return ModelPlanner().run(query, self.tools, tokenizer=tokenizer, generate=generate)
        return RulePlanner().run(query, self.tools)

    def _store_fetched(self, calls: list[ToolCall]) -> None:
        for c in calls:
            if (
                c.name == "extract_content"
                and not c.error
                and isinstance(c.result, dict)
                and c.result.get("text")
            ):
                r = c.result
                self.memory.store_document(
                    r["url"], r.get("title") or r["url"], r["text"], {"via": "extract_content"}
                )

    # -- after generation -------------------------------------------------------------------------------------
    def finish(
        self, turn: Turn, answer: str, prompt_tokens: int = 0, completion_tokens: int = 0
    ) -> RunResult:
        start = time.perf_counter()
        decision = turn.decision.model_dump() if turn.decision is not None else None
        if self.memory is not None and turn.conversation_id is not None:
            meta = {"response_id": turn.response_id, "model": turn.key}
            self.memory.add_message(turn.conversation_id, "user", turn.query, meta)
            self.memory.add_message(turn.conversation_id, "assistant", answer, meta)
        if self.responses is not None:
            self.responses.add(turn.response_id, model=turn.key, query=turn.query, answer=answer,
                               conversation_id=turn.conversation_id, task=turn.task, decision=decision,
                               owner=turn.owner)  # fmt: skip
        turn.timings["store"] = _ms(start)
        turn.timings["total"] = _ms(turn.started)
        return RunResult(
            response_id=turn.response_id, answer=answer, model=turn.key, decision=decision,
            explanation=turn.explanation, task=turn.task, tool_calls=[c.as_dict() for c in turn.tool_calls],
            memory_hits=turn.memory_hits, conversation_id=turn.conversation_id, timings=turn.timings,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        )  # fmt: skip

    # -- feedback ---------------------------------------------------------------------------------------------
    def feedback(
        self,
        response_id: str,
        rating: float,
        comment: str | None = None,
        owner: str | None = None,
        personal: bool = False,
    ) -> dict:
        """A rating in [-1, 1] for an answer: logged, and when the meta-braider chose its braid, an online
        update relative to the score it predicted (so +1 always pushes towards that decision). One rating per
        answer (a second raises AlreadyRated), from the ``owner`` the answer was written for: another
        owner's answer reads as unknown, so ids cannot be probed. ``personal``: the rating trains the owner's own
        correction (``meta.personal``), not the shared policy; the policy's probability then does not move."""
        from meta.decision import BraidingDecision

        if not -1 <= rating <= 1:
            raise ValueError(f"rating must be in [-1, 1], got {rating}")
        if self.responses is None:
            raise LookupError("this coordinator keeps no response log")
        row = self.responses.get(response_id)
        if row is None or (row.get("owner") is not None and row["owner"] != owner):
            raise LookupError(f"no response with id {response_id!r}")
        if self.responses.add_feedback(response_id, rating, comment) is None:
            raise AlreadyRated(
                f"response {response_id!r} has already been rated; a response takes one rating"
            )
        if row["decision"] is None or self.meta is None:
            return {"response_id": response_id, "learned": False}
        decision = BraidingDecision.model_validate(row["decision"])
        predicted = decision.predicted_score or 0.0
        user = owner if personal else None
        before = self.meta.probability(row["task"], decision)
        loss = self.meta.learn(row["task"], decision, predicted + rating, baseline=predicted, user=user)
        return {
            "response_id": response_id,
            "learned": True,
            "loss": loss,
            "updates": self.meta.updates,
            "personal": personal,
            "probability_before": before,
            "probability_after": self.meta.probability(row["task"], decision),
        }


def _generation(options: dict, decision: Any) -> dict:
    allowed = {"max_new_tokens", "temperature", "top_p", "stop", "seed"}
    if unknown := sorted(set(options) - allowed):
        raise TypeError(f"unknown options {unknown}; valid: {sorted(allowed | {'model', 'task', 'history'})}")
    out = {"max_new_tokens": DEFAULT_MAX_NEW_TOKENS, **{k: v for k, v in options.items() if v is not None}}
    if "temperature" not in out:  # the request's own temperature wins; else the decided one
        out["temperature"] = decision.temperature if decision is not None else 0.0
    return out


def _role(message: dict) -> dict:
    return {"role": message.get("role", "user"), "content": message.get("content", "")}


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
