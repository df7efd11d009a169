"""The Warp module options every module of the kernel compiles with (one definition).

Warp applies options per module: the kernel's module compiles the ``@wp.func``s of the other
modules into its own source, but each module calls :func:`configure` so that whichever one is
compiled, it is compiled alike. Exact float64 agreement with the reference depends on these.

On the CPU the kernel's ``@wp.func``s take their struct arguments (``State``, ``Model``,
``Caps``: some 2 KB of offsets and array descriptors) **by reference** instead of Warp's by
value (:func:`struct_refs`): the copies cost about a fifth of the CPU time (issue 15). No
function assigns to a struct argument, so the generated code computes the same thing.
"""

import warp as wp

# -DTWIN_STRUCT_REFS marks the module hash: a cached module built with Warp's by-value
# arguments (another checkout, or Warp's code generator changed) is not loaded in its place
STRUCT_REFS_FLAG = "-DTWIN_STRUCT_REFS=1"

# exact float64 agreement with the reference: no FMA contraction (CPU and CUDA)
OPTIONS = {
    "enable_backward": False,
    "fuse_fp": False,
    "cpu_compiler_flags": f"-march=native -ffp-contract=off {STRUCT_REFS_FLAG}",
}
PACKAGE = __name__.rsplit(".", 1)[0]  # twin.whatif.kernel


def configure(module_name: str) -> None:
    """Set the kernel's Warp options on the module ``module_name`` (call: ``configure(__name__)``)."""
    struct_refs()
    wp.set_module_options(dict(OPTIONS), module=module_name)


def _by_reference(src: str, adj) -> str:
    """``src`` (a generated CPU function) with its struct parameters taken by reference."""
    for arg in getattr(adj, "args", ()):
        if not hasattr(arg.type, "native_name"):  # a wp.struct
            continue
        decl = f"{arg.ctype()} {arg.emit()}"
        for end in (",", ")"):
            src = src.replace(decl + end, f"{arg.ctype()}& {arg.emit()}{end}", 1)
    return src


def struct_refs() -> bool:
    """Make Warp's CPU code generator pass struct arguments of this package's ``@wp.func``s by
    reference (once per process; other modules and CUDA code are left as Warp makes them).
    False where Warp's private code generator is not the one this was written for: the
    kernel then runs as Warp generates it, slower but with the same results."""
    try:
        from warp._src import codegen
    except ImportError:  # pragma: no cover - another Warp layout
        return False
    orig = getattr(codegen, "codegen_func", None)
    if orig is None:  # pragma: no cover
        return False
    if getattr(orig, "_twin_struct_refs", False):
        return True

    def codegen_func(*args, **kwargs):
        src = orig(*args, **kwargs)  # Warp's call passes through unchanged
        adj = kwargs.get("adj", args[0] if args else None)
        device = kwargs.get("device", args[2] if len(args) > 2 else "cpu")
        module = getattr(getattr(adj, "func", None), "__module__", "") or ""
        if device != "cpu" or not module.startswith(PACKAGE + "."):
            return src
        return _by_reference(src, adj)

    codegen_func._twin_struct_refs = True
    codegen_func.__wrapped__ = orig
    codegen.codegen_func = codegen_func
    return True
