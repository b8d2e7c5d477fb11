"""Multi-User Chat (XEP-0045): the room engine without I/O (room.py, with the configuration
form in config.py), the service that routes stanzas to rooms (service.py), and one file per
concern beside them (admin, owner, archive, register, search, store)."""

from heron.modules.muc.service import MucModule

__all__ = ["MucModule"]
