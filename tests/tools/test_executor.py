"""ToolExecutor: schemas, validation errors that name the field, unknown tools, timeouts, search_memory."""

import time

import pytest
from pydantic import BaseModel

from tools import ToolExecutor, ToolTimeoutError, ToolValidationError, UnknownToolError


@pytest.fixture
def tools():
    with ToolExecutor() as ex:
        yield ex


def test_list_tools_has_json_schemas(tools):
    listed = {t["name"]: t for t in tools.list_tools()}
    assert set(listed) == {"web_search", "extract_content"}
    schema = listed["web_search"]["input_schema"]
    assert schema["required"] == ["query"] and schema["properties"]["maxResults"]["maximum"] == 50
    assert schema["properties"]["engine"]["anyOf"][0]["enum"] == ["duckduckgo", "searxng"]


@pytest.mark.parametrize(
    "args, field",
    [
        ({}, "query"),
        ({"query": ""}, "query"),
        ({"query": "x", "maxResults": 0}, "maxResults"),
        ({"query": "x", "maxResults": "ten"}, "maxResults"),
        ({"query": "x", "engine": "bing"}, "engine"),
        ({"query": "x", "colour": "red"}, "colour"),
    ],
)
def test_bad_arguments_name_the_field(tools, args, field):
    with pytest.raises(ToolValidationError) as err:
        tools.execute("web_search", args)
    assert field in err.value.fields and repr(field) in str(err.value)


def test_arguments_must_be_an_object(tools):
    with pytest.raises(ToolValidationError, match="must be an object"):
        tools.execute("extract_content", ["http://example.com"])


def test_unknown_tool_lists_the_available_ones(tools):
    with pytest.raises(UnknownToolError, match="available tools: extract_content, web_search"):
        tools.execute("web_serch", {"query": "x"})


class SleepArgs(BaseModel):
    seconds: float


def test_timeout(tools):
    tools.register_function(lambda a: time.sleep(a.seconds) or "done", SleepArgs, "sleep", "sleeps")
    assert tools.execute("sleep", {"seconds": 0.01}) == "done"
    start = time.monotonic()
    with pytest.raises(ToolTimeoutError, match="sleep did not finish within 0.2s"):
        tools.execute("sleep", {"seconds": 2}, timeout_s=0.2)
    assert time.monotonic() - start < 1.0


def test_duplicate_names_are_refused(tools):
    with pytest.raises(ValueError, match="already registered"):
        tools.register_function(lambda a: None, SleepArgs, "web_search", "again")


def test_search_memory(tmp_path):
    from memory import MemoryManager

    memory = MemoryManager(data_dir=tmp_path, embedder="hashing")
    memory.store_document(
        "https://ex.org/tides", "Tides", "The moon's gravity raises tides in the oceans twice a day."
    )
    memory.store_document(
        "https://ex.org/bread", "Bread", "Knead the dough and let it rise before baking the loaf."
    )
    with ToolExecutor(memory_manager=memory) as tools:
        out = tools.execute("search_memory", {"query": "ocean tides and the moon", "topK": 1})
        assert [h["metadata"]["url"] for h in out["hits"]] == ["https://ex.org/tides"]
        with pytest.raises(ToolValidationError, match="'kind'"):
            tools.execute("search_memory", {"query": "x", "kind": "entities"})
    memory.close()
