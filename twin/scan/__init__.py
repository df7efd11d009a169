"""The as-built check: synthetic scans of a scene and registration of real scans against it.

open3d is imported inside the functions that use it, so importing this package stays fast.
"""
