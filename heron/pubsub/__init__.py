"""Publish-subscribe without I/O: node configuration, the engine, entity capabilities.

The pubsub module (``heron.modules.pubsub``) drives one engine for the service at
``pubsub.DOMAIN`` and for every account's PEP service (XEP-0163); only who may do what
differs, and that is a parameter of the engine.
"""
