"""The HTTP layer: a FastAPI app over a Coordinator. It only parses, checks and formats: every route hands a
typed call to the coordinator (in a worker thread, under the request timeout) and turns its errors into 4xx
JSON in OpenAI's error shape. The same app runs under uvicorn in-process and as the Ray Serve ingress.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve.config import ServeConfig
from serve.dashboard import Dashboard
from serve.limits import BodyLimit, Metrics
from serve.page import PAGE_PATHS, add_page_routes
from serve.schemas import (
    BraidInfo,
    ChatCompletion,
    ChatRequest,
    Conversation,
    ConversationIn,
    DecideRequest,
    DecideResponse,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    ModelCard,
    ModelList,
)  # fmt: skip

if TYPE_CHECKING:
    from serve.coordinator import Coordinator
    from serve.protocols import Memory

OPEN_PATHS = {"/healthz", "/openapi.json", *PAGE_PATHS}  # the page asks for the key itself
ERRORS = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 409: "conflict",
          413: "request_too_large", 422: "infeasible", 504: "timeout", 503: "unavailable"}  # fmt: skip
RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": kind} for code, kind in ERRORS.items()
}


def error(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    body = {
        "error": {
            "message": message,
            "type": ERRORS.get(status, "server_error"),
            "param": param,
            "code": code,
        }
    }
    return JSONResponse(body, status_code=status)


def _status_of(e: Exception) -> int:
    from meta.agent import Infeasible
    from serve.braids import BuildsBusy
    from serve.coordinator import AlreadyRated, UnknownModel

    for kind, status in ((Infeasible, 422), (UnknownModel, 404), (AlreadyRated, 409), (BuildsBusy, 503),
                         (LookupError, 404), (TimeoutError, 504),
                         (ValueError, 400), (TypeError, 400)):  # fmt: skip
        if isinstance(e, kind):
            return status
    return 500


def create_app(coordinator: Coordinator, config: ServeConfig) -> FastAPI:
    """The HTTP app over ``coordinator``, which it holds (``app.state.coordinator``)."""
    app = FastAPI(title="llm-braid", version="0.1", description=__doc__, responses=RESPONSES)
    metrics = Metrics()
    app.state.metrics, app.state.coordinator = metrics, coordinator
    _install_guards(app, config, metrics)

    async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        work = asyncio.to_thread(fn, *args, **kwargs)
        try:
            return await asyncio.wait_for(work, config.request_timeout_s)
        except TimeoutError:
            raise TimeoutError(f"the request took longer than {config.request_timeout_s:g}s") from None

    @app.post("/v1/chat/completions", response_model=ChatCompletion)
    async def chat_completions(body: ChatRequest, request: Request):
        owner = owner_of(request, body.user)
        user = owner if config.personalize and body.user else None  # that user's correction (meta.personal)
        kwargs = {**_run_kwargs(body, config), "owner": owner, "user": user}
        coord = app.state.coordinator
        if body.stream:
            turn = await call(coord.prepare, **kwargs)
            return ClosingStream(_sse(coord, turn, body, call, metrics), media_type="text/event-stream")
        result = await call(coord.run, **kwargs)
        return _completion(result, body, kwargs["max_new_tokens"])

    @app.get("/v1/models", response_model=ModelList)
    async def models():
        now = int(time.time())
        return ModelList(data=[ModelCard(id=m, created=now) for m in app.state.coordinator.models()])

    @app.post("/v1/braid/decide", response_model=DecideResponse)
    async def decide(body: DecideRequest):
        if body.query is None and body.task is None:
            raise ValueError("give a query or a task")
        task = body.task.model_dump() if body.task else None
        limits = body.constraints.model_dump(exclude_none=True) if body.constraints else {}
        key, decision, explanation, task = await call(
            app.state.coordinator.decide, body.query or "", "auto", task, limits
        )
        return DecideResponse(model=key, decision=decision.model_dump(), explanation=explanation, task=task)

    @app.post("/v1/feedback", response_model=FeedbackResponse)
    async def feedback(body: FeedbackRequest, request: Request):
        owner = owner_of(request, body.user)
        personal = config.personalize and body.user is not None
        out = await call(
            app.state.coordinator.feedback, body.response_id, body.rating, body.comment, owner, personal
        )
        return FeedbackResponse(**{k: out.get(k) for k in FeedbackResponse.model_fields})

    _conversation_routes(app, call)
    add_page_routes(app, Dashboard(config.records, coordinator.responses), call)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}  # open without a key: says nothing else (model names are behind the key)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics_text():
        return metrics.prometheus()

    return app


def _conversation_routes(app: FastAPI, call: Callable) -> None:
    def memory() -> Memory:
        mem = app.state.coordinator.memory
        if mem is None:
            raise LookupError("memory is disabled on this server")
        return mem

    @app.get("/v1/conversations", response_model=list[Conversation])
    async def list_conversations(limit: int = 50, offset: int = 0):
        if not (1 <= limit <= 500 and 0 <= offset <= 10**9):
            raise ValueError("limit must be 1..500 and offset 0..1e9")
        return await call(memory().list_conversations, limit, offset)

    @app.post("/v1/conversations", response_model=Conversation)
    async def create_conversation(body: ConversationIn):
        return Conversation(id=await call(memory().create_conversation, body.title), title=body.title)

    @app.get("/v1/conversations/{conversation_id}/messages")
    async def messages(conversation_id: str, limit: int = 100, offset: int = 0):
        if not (1 <= limit <= 1000 and 0 <= offset <= 10**9):
            raise ValueError("limit must be 1..1000 and offset 0..1e9")
        return await call(memory().get_conversation_history, conversation_id, limit, offset)

    @app.delete("/v1/conversations/{conversation_id}")
    async def delete_conversation(conversation_id: str):
        if not await call(memory().delete_conversation, conversation_id):
            raise LookupError(f"no conversation {conversation_id!r}")
        return {"id": conversation_id, "deleted": True}


def _install_guards(app: FastAPI, config: ServeConfig, metrics: Metrics) -> None:
    @app.middleware("http")
    async def auth_and_metrics(request: Request, call_next):
        start = time.perf_counter()
        if config.api_key and request.url.path not in OPEN_PATHS and not _authorized(request, config.api_key):
            response = error(401, "missing or wrong API key (send 'Authorization: Bearer <key>')")
        else:
            response = await call_next(request)
        took = time.perf_counter() - start
        metrics.observe(_route_template(app, request), response.status_code, took)
        response.headers["server-timing"] = f"app;dur={took * 1000:.1f}"  # to the headers, when streaming
        return response

    app.add_middleware(BodyLimit, max_bytes=config.max_request_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"] if p != "body") or None
        parts = ["{}: {}".format(".".join(str(p) for p in x["loc"] if p != "body") or "body", x["msg"])
                 for x in e.errors()[:5]]  # fmt: skip
        return error(400, "; ".join(parts) or "invalid request", param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException):
        return error(e.status_code, str(e.detail))

    # the coordinator's errors, by kind; anything else is a 500 (and a bug)
    @app.exception_handler(ValueError)
    @app.exception_handler(LookupError)
    @app.exception_handler(TimeoutError)
    @app.exception_handler(TypeError)
    @app.exception_handler(Exception)
    async def failure(_: Request, e: Exception):
        status = _status_of(e)
        message = str(e) if status != 500 else f"internal error: {type(e).__name__}"
        closest = getattr(e, "closest", None)
        return error(status, message, code="closest: " + closest.model_dump_json() if closest else None)


def _route_template(app: FastAPI, request: Request) -> str:
    """The template of the route a request matches (a fixed set of label values), or "other"."""
    from starlette.routing import Match

    for route in app.router.routes:
        if route.matches(request.scope)[0] == Match.FULL:
            return getattr(route, "path", "other")
    return "other"


def owner_of(request: Request, user: str | None) -> str:
    """Who an answer belongs to: a digest of the bearer token and the request's ``user`` (never stored in
    the clear). Feedback on an answer must come from the same owner."""
    import hashlib

    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    return hashlib.sha256(f"{token}\0{user or ''}".encode()).hexdigest()[:32]


def _authorized(request: Request, key: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def _run_kwargs(body: ChatRequest, config: ServeConfig) -> dict[str, Any]:
    opts = body.braid
    wanted = body.max_completion_tokens or body.max_tokens or min(64, config.max_tokens_limit)
    if wanted > config.max_tokens_limit:
        raise ValueError(f"max_tokens {wanted} exceeds this server's limit of {config.max_tokens_limit}")
    *history, last = body.messages
    return {
        "query": last.text,
        "use_memory": config.use_memory
        and (opts.use_memory if opts and opts.use_memory is not None else True),
        "use_tools": config.use_tools and (opts.use_tools if opts and opts.use_tools is not None else True),
        "conversation_id": opts.conversation_id if opts else None,
        "constraints": opts.constraints.model_dump(exclude_none=True) if opts and opts.constraints else None,
        "model": body.model,
        "task": opts.task.model_dump() if opts and opts.task else None,
        "history": [{"role": m.role, "content": m.text} for m in history],
        "max_new_tokens": wanted,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "stop": body.stop,
        "seed": body.seed,
    }


def _braid_info(result: Any) -> dict:
    return {k: getattr(result, k) for k in BraidInfo.model_fields}


def _completion(result: Any, body: ChatRequest, max_new_tokens: int) -> dict:
    finish = "length" if result.completion_tokens >= max_new_tokens else "stop"
    return {
        "id": result.response_id, "object": "chat.completion", "created": int(time.time()), "model": result.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.answer}, "finish_reason": finish}],
        "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                  "total_tokens": result.prompt_tokens + result.completion_tokens},
        "braid": _braid_info(result),
    }  # fmt: skip


class ClosingStream(StreamingResponse):
    """A streamed response that closes its generator however the response ends. Starlette cancels the send
    loop of a stream whose client left; when that lands while the generator waits at a ``yield``, the generator
    would be closed (the braid freed, the stop counted) only whenever the garbage collector finds it."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # the response's scope may be cancelled: close regardless
                await self.body_iterator.aclose()


async def _sse(
    coord: Any, turn: Any, body: ChatRequest, call: Callable, metrics: Metrics
) -> AsyncIterator[str]:
    """OpenAI's chunk stream: a role delta, content deltas, a final chunk with finish_reason (and ``braid``),
    an optional usage chunk, then [DONE]. An error after the first byte arrives as an ``error`` event."""
    created = int(time.time())

    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> str:
        data = {"id": turn.response_id, "object": "chat.completion.chunk", "created": created, "model": turn.key,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}  # fmt: skip
        return f"data: {json.dumps(data)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    pieces, answer, lock = coord.stream(turn), [], threading.Lock()
    done = object()

    def step() -> Any:
        with lock:  # a stop waits for the token in flight, then closes the generator
            return next(pieces, done)

    try:
        while (piece := await call(step)) is not done:
            answer.append(piece)
            yield chunk({"content": piece})
        result = await call(coord.finish, turn, "".join(answer), 0, len(answer))
        metrics.finished()
    except (asyncio.CancelledError, GeneratorExit):  # the client left mid-answer (the page's stop button)
        threading.Thread(
            target=_stopped, args=(coord, turn, pieces, answer, lock, metrics), daemon=True
        ).start()
        raise
    except Exception as e:  # noqa: BLE001 - the status line is sent: report in-band
        body_ = {"error": {"message": str(e), "type": ERRORS.get(_status_of(e), "server_error")}}
        yield f"data: {json.dumps(body_)}\n\ndata: [DONE]\n\n"
        return
    finish = "length" if len(answer) >= turn.params.max_new_tokens else "stop"
    yield chunk({}, finish, braid=_braid_info(result))
    if (body.stream_options or {}).get("include_usage"):
        usage = {"prompt_tokens": 0, "completion_tokens": len(answer), "total_tokens": len(answer)}
        yield f"data: {json.dumps({'id': turn.response_id, 'object': 'chat.completion.chunk', 'created': created, 'model': turn.key, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"


def _stopped(
    coord: Any, turn: Any, pieces: Any, answer: list[str], lock: threading.Lock, metrics: Metrics
) -> None:
    """Stop a stream whose client left: closing the generator ends the braid's decoding loop after the token
    it is on (and frees the braid for the next request); the part already sent is kept as the answer."""
    with lock:
        pieces.close()
    metrics.stopped()
    coord.finish(turn, "".join(answer), 0, len(answer))
