"""Request and response schemas, one module per resource (``...Public`` out, ``...Create`` in)."""
