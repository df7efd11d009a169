"""What-if: simulate the fab's process flow under scenario variants.

``twin.whatif.reference`` is the readable event-by-event engine that defines the semantics;
scenarios, statistics and the runner build on it. ``twin.whatif.runner`` (``RunConfig``,
``run_whatif``) runs scenarios × replications on an engine (``twin.whatif.engines``) through an
executor (``twin.whatif.executors``) into a result (``twin.whatif.results``), and re-exports
their names. Importing this package loads nothing heavy.
"""
