"""All tables medloop migrates: the FEST catalogue tables and the engine's own."""

from fest.schema import metadata

__all__ = ["metadata"]
