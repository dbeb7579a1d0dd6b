"""Planners and prompts: the rule planner's triggers, the model planner's tool-call loop through a real chat
template, tool-call parsing, task inference and fitting a prompt into every member's context."""

from __future__ import annotations

import pytest

from meta.requests import infer_task
from serve.planner import ModelPlanner, RulePlanner, parse_tool_calls, supports_tool_calls
from serve.prompt import build_prompt, fit_prompt
from tools import FetchSettings, SearchSettings, ToolExecutor, ToolsConfig

TEMPLATE = (
    "{% if tools %}<tools>{% for t in tools %}{{ t.function.name }} {% endfor %}</tools>\n{% endif %}"
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


@pytest.fixture
def executor(pages):
    config = ToolsConfig(
        fetch=FetchSettings(allow=("127.0.0.1/32",), timeout_s=3.0),
        search=SearchSettings(duckduckgo_url=f"{pages.base}/html/", min_interval_s=0.0, backoff_s=0.01),
    )
    with ToolExecutor(config) as ex:
        yield ex


def test_rule_planner_fetches_urls_and_searches_on_request(executor, pages):
    calls = RulePlanner().run(f"what does {pages.base}/article say?", executor)
    assert [c.name for c in calls] == ["extract_content"] and calls[0].arguments == {
        "url": f"{pages.base}/article"
    }
    assert "hidden states" in calls[0].text
    calls = RulePlanner().run("search for braided language models", executor)
    assert calls[0].name == "web_search" and calls[0].arguments["query"] == "braided language models"
    assert RulePlanner().run("tell me a story", executor) == []


def test_model_planner_runs_the_calls_the_model_asks_for(executor, pages, tokenizer):
    # No model here was trained to call tools, so the model's replies are scripted; the template, parsing,
    # execution and the loop's message protocol are real.
    tokenizer.chat_template = TEMPLATE
    assert supports_tool_calls(tokenizer)
    prompts: list[str] = []
    replies = iter([f'<tool_call>{{"name": "extract_content", "arguments": {{"url": "{pages.base}/article"}}}}</tool_call>',
                    "The page is about braids."])  # fmt: skip

    def generate(prompt: str, max_new_tokens: int) -> str:
        prompts.append(prompt)
        return next(replies)

    calls = ModelPlanner().run("what is on the page?", executor, tokenizer=tokenizer, generate=generate)
    assert [c.name for c in calls] == ["extract_content"] and calls[0].error is None
    assert "<tools>web_search extract_content </tools>" in prompts[0]
    assert "<tool>" in prompts[1] and "hidden states" in prompts[1]  # the result went back to the model
    tokenizer.chat_template = None


def test_parse_tool_calls_skips_malformed_blocks():
    text = ('<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call> <tool_call>{oops}</tool_call>'
            '<tool_call>{"name": 3, "arguments": {}}</tool_call><tool_call>{"name": "b", "arguments": []}</tool_call>')  # fmt: skip
    assert parse_tool_calls(text) == [("a", {"x": 1})]


@pytest.mark.parametrize(
    ("query", "kind"),
    [("def add(a, b):", "code_completion"), ("what is 3 + 4?", "arithmetic"),
     ("what is the value of key qwe?", "fact_recall"), ("Why is the sky blue?", "qa"),
     ("Once upon a time", "language_modeling")],
)  # fmt: skip
def test_infer_task(query, kind):
    task = infer_task(query)
    assert task["type"] == kind and task["description"] == query and 0 <= task["complexity"] <= 1


def test_build_prompt_quotes_context_before_the_conversation():
    prompt = build_prompt("and now?", [{"role": "user", "content": "hi"}], [{"title": "T", "content": "body"}],
                          [{"name": "extract_content", "text": "page"}])  # fmt: skip
    assert prompt.index("[1] T: body") < prompt.index("[extract_content] page") < prompt.index("user: hi")
    assert prompt.endswith("user: and now?\nassistant:")


def test_fit_prompt_keeps_the_end_within_every_members_positions(pico):
    from braid import BraidedLLM

    braided = BraidedLLM([pico("llama", 32, 2), pico("gpt2", 64, 4)], fusion_layers=[0], fusion_dim=8)
    braided.models[1].model.config.n_positions = 64
    prompt = " ".join(f"word{i}" for i in range(400)) + " END"
    fitted = fit_prompt(braided, prompt, new_tokens=16)
    assert fitted.endswith(" END") and len(braided.models[1].tokenizer(fitted)["input_ids"]) <= 64 - 16
    with pytest.raises(ValueError, match="leaves no room"):
        fit_prompt(braided, prompt, new_tokens=64)
