"""The HTTP API: OpenAI-compatible routes, admin routes, and their pure helpers."""
