"""HTTP handlers: /health, /metrics and the REST API under /api/chat."""
