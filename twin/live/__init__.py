"""Live sync: fab events validated, stored durably, and applied to the twin state and world.

``events`` (the envelope and schema), ``catalog`` (known ids), ``validate``, ``state``
(``TwinState`` and ``apply``), ``order`` (reorder buffer), ``store`` (event stores), ``sources``
(bus, JSONL), ``mqtt`` (MQTT source/sink), ``sync`` (the synchroniser), ``commands`` (CLI).
"""
