"""XEP-0077 In-Band Registration with XEP-0445 invitations (their store in store.py)."""

from heron.modules.register.module import PARS, RegisterModule, SlidingWindow

__all__ = ["PARS", "RegisterModule", "SlidingWindow"]
