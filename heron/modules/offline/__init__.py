"""XEP-0160 offline messages: the module and its store."""

from heron.modules.offline.module import OfflineModule

__all__ = ["OfflineModule"]
