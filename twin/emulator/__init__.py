"""The fab emulator: the "real" fab that the twin watches, as a seeded stream of fab events.

``emulator`` (``Emulator``: the scene's process model run by the reference engine through its
public hooks, with the OHT simulator moving every carrier), ``amhs`` (carrier transfers and
vehicles), ``truth`` (the hidden changes of ``--truth``), ``commands`` (``twin emulate``).
It is a client of the what-if engine and of the physics package; ``twin.live`` imports none
of them (it only receives the stream). Importing this package loads nothing else.
"""
