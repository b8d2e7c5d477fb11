"""XEP-0313 message archives: the module (queries, preferences) and its store."""

from heron.modules.mam.module import MamModule

__all__ = ["MamModule"]
