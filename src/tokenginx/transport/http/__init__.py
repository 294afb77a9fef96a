"""The HTTP door: the REST API of contract §3, events, metrics and docs, on uvicorn."""
