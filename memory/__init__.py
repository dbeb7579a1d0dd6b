"""MemoryManager over a store interface: embedded SQLite default and a Neo4j backend (memory issue)."""
