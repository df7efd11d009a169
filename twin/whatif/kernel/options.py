"""The Warp module options every module of the kernel compiles with (one definition).

Warp applies options per module: the kernel's module compiles the ``@wp.func``s of the other
modules into its own source, but each module calls :func:`configure` so that whichever one is
compiled, it is compiled alike. Exact float64 agreement with the reference depends on these.
"""

import warp as wp

# exact float64 agreement with the reference: no FMA contraction (CPU and CUDA)
OPTIONS = {
    "enable_backward": False,
    "fuse_fp": False,
    "cpu_compiler_flags": "-march=native -ffp-contract=off",
}


def configure(module_name: str) -> None:
    """Set the kernel's Warp options on the module ``module_name`` (call: ``configure(__name__)``)."""
    wp.set_module_options(dict(OPTIONS), module=module_name)
