"""The API as an import string for servers that start their own workers:
``uvicorn hub.serve.asgi:app --workers 2`` (settings from the ``HUB_*`` environment)."""

from hub.serve.app import create_app, tune_for_serving
from hub.settings import get_settings

app = create_app(get_settings())
tune_for_serving(get_settings())
