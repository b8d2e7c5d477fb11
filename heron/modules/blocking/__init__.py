"""XEP-0191 Blocking Command, with XEP-0377 spam reports kept for the admins (store.py)."""

from heron.modules.blocking.module import BlockingModule

__all__ = ["BlockingModule"]
