"""The hub's HTTP API: ``create_app(settings)``; ``hub serve`` runs it with uvicorn."""

from hub.serve.app import create_app

__all__ = ["create_app"]
