"""venvlayers: lock, build, publish and deploy layered Python environments."""

__version__ = "0.1.0"
