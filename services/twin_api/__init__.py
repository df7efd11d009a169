"""The twin's HTTP/WebSocket API: ``create_app(settings)`` in ``twin_api.app``."""
