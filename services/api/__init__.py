"""The twin's HTTP/WebSocket API: ``create_app(settings)`` in ``services.api.app``."""
