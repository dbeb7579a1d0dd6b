"""The full system (the cheat sheet's last section): a braid, memory and tools behind one Coordinator.

`braid serve` puts the same Coordinator behind an OpenAI-compatible HTTP API (and on Ray Serve).

    python examples/coordinator.py ["a question"]
"""

import sys

from common import zoo

from braid import BraidedLLM
from memory import MemoryManager
from serve import Coordinator
from tools import ToolExecutor

paths = zoo()
braided = BraidedLLM(
    model_configs=[{"model_name": paths["prose-llama"]}, {"model_name": paths["facts-mistral"]}]
)
memory = MemoryManager()  # Neo4j when NEO4J_URI is set (environment or .env), else SQLite
tools = ToolExecutor()
coordinator = Coordinator(braided_model=braided, memory_manager=memory, tool_executor=tools)

query = sys.argv[1] if len(sys.argv) > 1 else "Search for AI advances and summarize"
result = coordinator.run(query=query, use_memory=True, use_tools=True, max_new_tokens=24)
print("answer:", repr(result.answer))
print("tool calls:", [(c["name"], c["error"] or "ok") for c in result.tool_calls])
print("timings (ms):", {k: round(v, 1) for k, v in result.timings.items()})
tools.close()
