"""Base utilities every layer may use: clock, SQLite, YAML, settings primitives, logging."""
