"""Tool planners: decide when a query needs a search or a fetch.

``RulePlanner`` (the default) works with any model, small ones included: a URL in the query is fetched, a
request to search is searched (and its top hit fetched). ``ModelPlanner`` lets the model drive when its chat
template declares tools: the template renders the tool schemas, the model answers with ``<tool_call>{json}``
blocks (the Hermes / Qwen format), and the calls run until it answers without one.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

URL = re.compile(r"https?://[^\s<>\"')\]]+")
SEARCH = re.compile(
    r"^\s*(?:please\s+)?(?:search(?:\s+the\s+web)?(?:\s+for)?|look\s+up|find)\b\s*:?\s*", re.I
)
TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)


@dataclass
class ToolCall:
    name: str
    arguments: dict
    result: Any = None
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def text(self) -> str:
        """What the prompt quotes of the result."""
        if self.error:
            return f"error: {self.error}"
        r = self.result
        if isinstance(r, dict) and "text" in r:
            return f"{r.get('title') or r.get('url', '')}: {r['text']}"
        if isinstance(r, dict) and "results" in r:
            return "; ".join(f"{x['title']} ({x['url']}) {x.get('snippet', '')}" for x in r["results"])
        return json.dumps(r)[:2000]


def run_call(executor: Any, name: str, arguments: dict) -> ToolCall:
    """Execute one call; a tool's failure is recorded in the call, not raised (the answer goes on without it)."""
    call, start = ToolCall(name, arguments), time.perf_counter()
    try:
        call.result = executor.execute(name, arguments)
    except Exception as e:  # noqa: BLE001 - every tool error is reported to the caller as data
        call.error = f"{type(e).__name__}: {e}"
    call.seconds = time.perf_counter() - start
    return call


class RulePlanner:
    def __init__(self, max_fetches: int = 2, search_results: int = 3):
        self.max_fetches = max_fetches
        self.search_results = search_results

    def run(self, query: str, executor: Any, **_: Any) -> list[ToolCall]:
        available = {t["name"] for t in executor.list_tools()}
        urls = list(dict.fromkeys(u.rstrip(".,;:!?") for u in URL.findall(query)))[: self.max_fetches]
        if urls and "extract_content" in available:
            return [run_call(executor, "extract_content", {"url": u}) for u in urls]
        if SEARCH.match(query) and "web_search" in available:
            terms = SEARCH.sub("", query).strip() or query
            search = run_call(
                executor, "web_search", {"query": terms[:500], "maxResults": self.search_results}
            )
            calls = [search]
            hits = (search.result or {}).get("results", []) if not search.error else []
            if hits and "extract_content" in available:
                calls.append(run_call(executor, "extract_content", {"url": hits[0]["url"]}))
            return calls
        return []


def supports_tool_calls(tokenizer: Any) -> bool:
    template = getattr(tokenizer, "chat_template", None)
    return isinstance(template, str) and "tools" in template


def parse_tool_calls(text: str) -> list[tuple[str, dict]]:
    """``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks; malformed ones are skipped."""
    calls = []
    for block in TOOL_CALL.findall(text):
        try:
            data = json.loads(block)
        except json.JSONDecodeError:
            continue
        args = data.get("arguments", {}) if isinstance(data, dict) else None
        if isinstance(data, dict) and isinstance(data.get("name"), str) and isinstance(args, dict):
            calls.append((data["name"], args))
    return calls


class ModelPlanner:
    def __init__(self, max_rounds: int = 3, max_new_tokens: int = 128):
        self.max_rounds = max_rounds
        self.max_new_tokens = max_new_tokens

    def run(
        self, query: str, executor: Any, *, tokenizer: Any, generate: Callable[[str, int], str], **_: Any
    ) -> list[ToolCall]:
        tools = [
            {"type": "function", "function": {"name": t["name"], "description": t["description"],
                                              "parameters": t["input_schema"]}}
            for t in executor.list_tools()
        ]  # fmt: skip
        messages: list[dict] = [{"role": "user", "content": query}]
        calls: list[ToolCall] = []
        for _ in range(self.max_rounds):
            prompt = tokenizer.apply_chat_template(
                messages, tools=tools, add_generation_prompt=True, tokenize=False
            )
            wanted = parse_tool_calls(generate(prompt, self.max_new_tokens))
            if not wanted:
                break
            made = [run_call(executor, name, args) for name, args in wanted]
            calls += made
            messages.append({"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in made
            ]})  # fmt: skip
            messages += [{"role": "tool", "name": c.name, "content": c.text[:4000]} for c in made]
        return calls
