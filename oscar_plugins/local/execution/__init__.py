"""Running executions: admission by cpu/memory, faas-supervisor's rules or the real supervisor, processes,
logs, bodies."""
