"""Multi-User Chat (XEP-0045): the room model and its forms (model.py, readable and testable
without a server) and the module that routes stanzas to rooms (module.py)."""

from heron.modules.muc.module import MucModule

__all__ = ["MucModule"]
