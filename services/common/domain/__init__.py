"""The domain: the records the platform keeps and the pure rules over them. It imports schemas and
nothing that does I/O (no database, broker, object store, Triton or HTTP client); the repositories and
the services import it, never the reverse (pyproject's import-linter contracts hold it to that)."""
