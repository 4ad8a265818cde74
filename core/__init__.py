"""Guanxi (关系): a pluggable CRM core.

Plugins import what they need from :mod:`core.extend`, the stable public surface; the rest of
this package is internal and may change between minor versions.
"""

__version__ = "0.1.0"
