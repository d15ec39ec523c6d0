"""Single-instruction tasks to proposed CoI chains with an LLM (the paper's three steps)."""
