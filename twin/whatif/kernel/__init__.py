"""The batched what-if kernel on NVIDIA Warp (issue 6): one thread per replication.

``simulate_batch(models, SimConfig(...), replications, device="cpu"|"cuda:0")`` runs scenarios
× replications in one launch; ``simulate(model, cfg)`` is the reference's ``simulate`` on the
kernel. Importing this package registers the ``"kernel"`` engine with the what-if runner
(``twin whatif run ... --engine kernel``); Warp itself is imported on first use.
"""

from twin.whatif.kernel.engine import (
    CapacityError,
    KernelEngine,
    KernelRun,
    bytes_per_replication,
    simulate,
    simulate_batch,
)
from twin.whatif.runner import register_engine

register_engine("kernel", KernelEngine)

__all__ = [
    "CapacityError",
    "KernelEngine",
    "KernelRun",
    "bytes_per_replication",
    "simulate",
    "simulate_batch",
]
