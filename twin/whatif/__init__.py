"""What-if: simulate the fab's process flow under scenario variants.

``twin.whatif.reference`` is the readable event-by-event engine that defines the semantics;
scenarios, statistics and the runner build on it. Importing this package loads nothing heavy.
"""
