"""The errors a tool call can raise. Every message names what was wrong, so a caller (or a model) can fix it."""


class ToolError(Exception):
    """Base class: a tool call failed."""


class UnknownToolError(ToolError, KeyError):
    def __init__(self, name: str, available: list[str]):
        self.name, self.available = name, available
        super().__init__(
            f"unknown tool {name!r}; available tools: {', '.join(sorted(available)) or '(none)'}"
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class ToolValidationError(ToolError, ValueError):
    """Arguments failed the tool's schema; ``fields`` lists the offending argument names."""

    def __init__(self, tool: str, fields: list[str], message: str):
        self.tool, self.fields = tool, fields
        super().__init__(f"{tool}: invalid arguments: {message}")


class ToolTimeoutError(ToolError, TimeoutError):
    pass


class UnsafeURLError(ToolError):
    """The URL points somewhere the fetcher must not go (loopback, private network, metadata service, …)."""


class FetchError(ToolError):
    """The page could not be fetched within the caps, or its content is not something we extract."""


class ProviderError(ToolError):
    """A search provider failed or could not be reached."""
