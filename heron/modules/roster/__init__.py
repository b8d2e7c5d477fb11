"""RFC 6121 §2 rosters."""

from heron.modules.roster.module import RosterModule

__all__ = ["RosterModule"]
