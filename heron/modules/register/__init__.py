"""XEP-0077 In-Band Registration with XEP-0445 invitations (their store in store.py)."""

from heron.modules.register.module import RegisterModule, SlidingWindow

__all__ = ["RegisterModule", "SlidingWindow"]
