"""Publish-subscribe (XEP-0060) and personal eventing (XEP-0163): the engine without I/O
(engine.py, its values in model.py, node configuration in config.py), the XML of requests
and answers (codec.py), who hears of PEP changes (pep.py), avatars and bookmarks kept the
same as the vCard and private storage (sync.py, with avatar.py and bookmarks.py), the store
on either engine (store.py), and the thin module that ties them together (module.py)."""

from heron.modules.pubsub.module import PubsubModule

__all__ = ["PubsubModule"]
