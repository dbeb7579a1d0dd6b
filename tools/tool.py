"""``Tool``: one callable tool with the JSON schema of its arguments, as every tool source builds it (local
functions, the built-ins, an external MCP server's tools) and ``ToolExecutor`` runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from tools.errors import ToolValidationError


@dataclass(frozen=True)
class Tool:
    """A callable tool. ``validate`` turns raw arguments into what ``call`` takes, or raises ToolValidationError."""

    name: str
    description: str
    input_schema: dict
    validate: Callable[[dict], Any]
    call: Callable[[Any], Any]
    source: str = "local"

    @classmethod
    def local(cls, name: str, description: str, params: type[BaseModel], fn: Callable[[Any], Any]) -> Tool:
        def validate(args: dict) -> BaseModel:
            try:
                return params.model_validate(args)
            except ValidationError as e:
                raise _validation_error(name, e) from None

        return cls(name, description, params.model_json_schema(by_alias=True), validate, fn)


def _validation_error(tool: str, err: ValidationError) -> ToolValidationError:
    fields, parts = [], []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(arguments)"
        fields.append(field)
        got = f" (got {e['input']!r:.60})" if e["type"] != "missing" and "input" in e else ""
        parts.append(f"{field!r}: {e['msg']}{got}")
    return ToolValidationError(tool, fields, "; ".join(parts))


def to_jsonable(value: Any) -> Any:
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value, by_alias=True)
