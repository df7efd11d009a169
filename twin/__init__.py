"""twin — a live, physical, queryable digital twin of a semiconductor wafer fab.

Importing this package starts nothing and reads no file; subpackages import their heavy
dependencies (trimesh, pybullet, warp, open3d) where they are used.
"""

from twin.errors import TwinError

__all__ = ["TwinError", "__version__"]
__version__ = "0.1.0"
