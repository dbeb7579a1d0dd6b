"""Memory (the cheat sheet's Neo4j section): conversations, entities, documents and semantic search.

With NEO4J_URI set (environment or .env) this runs on Neo4j, as the seed does; without it, on the embedded
SQLite store (same API, nothing to install).

    python examples/memory_basics.py
"""

from memory import MemoryManager, Neo4jClient, init_schema
from memory.neo4j_store import setting

if setting("NEO4J_URI"):
    neo4j = Neo4jClient()
    init_schema(neo4j)
    memory = MemoryManager(neo4j)
else:
    memory = MemoryManager()  # SQLite under $BRAID_DATA_DIR
print("backend:", type(memory.store).__name__)

conv_id = memory.create_conversation()
memory.add_message(conv_id, "user", "Hello, I want to learn about machine learning")
memory.add_message(conv_id, "assistant", "Machine learning fits models to data.")
print("history:", [m["content"] for m in memory.get_conversation_history(conv_id)])

memory.create_entity("Python", "language", "Programming language")
memory.create_entity_relationship("Python", "Django", "has framework")  # Django is created, type normalised
print("neighbourhood:", memory.get_entity_neighbourhood("Python"))

memory.store_document(
    "https://example.org/braiding", "Braiding", "Braiding exchanges hidden states between models."
)
print("messages:", [h["text"] for h in memory.semantic_search_messages("machine learning", top_k=2)])
print(
    "documents:", [h["metadata"]["title"] for h in memory.semantic_search_documents("hidden states", top_k=1)]
)
