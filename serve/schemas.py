"""The HTTP API's request and response bodies: OpenAI's chat-completions schema, plus a ``braid`` extension
(memory, tools, conversation, constraints, task) that OpenAI clients send through ``extra_body``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ID = r"^[A-Za-z0-9_.:-]{1,128}$"


# Request bodies are strict (JSON types as written: "8" is not an int, "yes" not a bool) and finite (no
# NaN or Infinity, which Python's JSON parser accepts): every number reaches the code inside a range it handles.
STRICT = {"frozen": True, "strict": True, "allow_inf_nan": False}


class _Text(BaseModel):
    """A request body whose every string is text a tokenizer can read: JSON's "\\ud800" decodes to a lone
    surrogate, which no UTF-8 tokenizer takes (it raised a TypeError deep in generation). On the top-level
    bodies only: one walk over the raw body, naming the field by its path."""

    @model_validator(mode="before")
    @classmethod
    def _unicode(cls, data: Any) -> Any:
        _check_text(data, "")
        return data


def _check_text(value: Any, where: str) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(
                f"{where or 'body'}: not valid Unicode text (a lone surrogate at {e.start})"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_text(item, f"{where}[{i}]")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", **STRICT)


class TextPart(_In):
    type: Literal["text"]
    text: str = Field(max_length=100_000)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", **STRICT)  # OpenAI messages carry optional extras
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = Field(None, description="text, or text parts")
    name: str | None = Field(None, max_length=64)

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class TaskIn(_In):
    type: str = Field(min_length=1, max_length=64)
    complexity: float = Field(0.5, ge=0, le=1)
    capabilities: list[str] = Field(default_factory=list, max_length=16)
    description: str = Field("", max_length=2000)


class ConstraintsIn(_In):
    compute_budget: float | None = Field(None, gt=0, le=1, description="max share of the pool's parameters")
    latency_requirement: float | None = Field(None, gt=0, le=1e6, description="max decode ms per token")
    accuracy_target: float | None = Field(
        None, ge=0, le=1, description="min quality 0..1: share of the best score measured for the task type"
    )
    min_score: float | None = Field(None, ge=-1e6, le=1e6, description="min predicted raw score (log scale)")


class BraidOptions(_In):
    use_memory: bool | None = None
    use_tools: bool | None = None
    conversation_id: str | None = Field(None, pattern=ID)
    constraints: ConstraintsIn | None = None
    task: TaskIn | None = None


class ChatRequest(_Text):
    model_config = ConfigDict(extra="ignore", **STRICT)  # unsupported OpenAI options are ignored
    model: str = Field("auto", min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=2**31 - 1)
    max_completion_tokens: int | None = Field(None, ge=1, le=2**31 - 1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=1, description="one choice per request")
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    user: str | None = Field(None, max_length=256)
    stream_options: dict | None = None
    braid: BraidOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        stops = [v] if isinstance(v, str) else v or []
        if len(stops) > 4 or any(not s or len(s) > 64 for s in stops):
            raise ValueError("stop: at most 4 non-empty sequences of up to 64 characters")
        return v

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, v: list[ChatMessage]) -> list[ChatMessage]:
        if v[-1].role != "user" or not v[-1].text.strip():
            raise ValueError("the last message must be a non-empty user message")
        return v


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class BraidInfo(BaseModel):
    """What the coordinator did for this answer (decision, explanation, tools, memory, timings)."""

    decision: dict | None = None
    explanation: str | None = None
    task: dict | None = None
    tool_calls: list[dict] = []
    memory_hits: list[dict] = []
    conversation_id: str | None = None
    timings: dict[str, float] = {}


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    braid: BraidInfo


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llm-braid"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class DecideRequest(_In, _Text):
    query: str | None = Field(None, min_length=1, max_length=20_000, description="infer the task from it")
    task: TaskIn | None = None
    constraints: ConstraintsIn | None = None


class DecideResponse(BaseModel):
    model: str
    decision: dict
    explanation: str
    task: dict


class FeedbackRequest(_In, _Text):
    response_id: str = Field(pattern=ID)
    rating: float = Field(ge=-1, le=1, description="-1 (bad) .. 1 (good)")
    comment: str | None = Field(None, max_length=2000)
    user: str | None = Field(None, max_length=256, description="the chat request's `user`, if it gave one")


class FeedbackResponse(BaseModel):
    response_id: str
    learned: bool
    updates: int | None = None
    probability_before: float | None = Field(
        None, description="the policy's probability of the decision, before"
    )
    probability_after: float | None = Field(None, description="... and after this rating's update")
    personal: bool = Field(False, description="the rating trained the user's own correction (personalize)")


class ConversationIn(_In, _Text):
    title: str | None = Field(None, max_length=256)


class Conversation(BaseModel):
    id: str
    title: str | None = None
    message_count: int | None = None


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
