"""Prompts: the prompt built from memory and tool results (the
seed's Pattern 3: retrieve, then generate with the context), and fitting it into every member's context."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def build_prompt(
    query: str,
    history: Sequence[dict] = (),
    documents: Sequence[dict] = (),
    tool_results: Sequence[dict] = (),
    snippet_chars: int = 400,
) -> str:
    """Context (documents, tool output), then the conversation, then the query. Retrieved and fetched text is
    quoted as context, never as instructions."""
    parts = []
    context = [_doc_line(i, d, snippet_chars) for i, d in enumerate(documents, 1)]
    context += [f"[{t['name']}] {_clip(str(t.get('text', '')), snippet_chars)}" for t in tool_results]
    if context:
        parts.append("Context (quoted, untrusted):\n" + "\n".join(context))
    if history:
        parts.append("\n".join(f"{m['role']}: {m['content']}" for m in history))
    parts.append(f"user: {query}\nassistant:")
    return "\n\n".join(parts)


def _doc_line(i: int, doc: dict, chars: int) -> str:
    title = doc.get("title") or doc.get("url") or "document"
    return f"[{i}] {title}: {_clip(doc.get('content') or doc.get('text') or '', chars)}"


def _clip(text: str, chars: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def fit_prompt(braided: Any, prompt: str, new_tokens: int, spare: int = 8) -> str:
    """Drop the prompt's oldest characters until every member can read it and write ``new_tokens`` more
    within its position limit (members may tokenize the same text into very different lengths)."""
    from braid.generation import max_positions

    for member in getattr(braided, "models", ()):
        limit = max_positions(member)
        if limit is None:
            continue
        room = limit - new_tokens - spare
        if room <= 0:
            raise ValueError(f"max_tokens {new_tokens} leaves no room for a prompt ({limit} positions)")
        while prompt and (n := len(member.tokenizer(prompt)["input_ids"])) > room:
            prompt = prompt[max(1, int(len(prompt) * (1 - room / n)) + 1) :]
    return prompt
