"""Server Dialback (XEP-0220) keys, as XEP-0185 recommends.

key = HMAC-SHA256(SHA256(secret), "{receiving} {originating} {stream id}") in hex. The
secret never leaves the server; the key names both domains and the stream, so a key is
good for one pair of domains on one stream only.
"""

from __future__ import annotations

import hashlib
import hmac


def dialback_key(secret: bytes, receiving: str, originating: str, stream_id: str) -> str:
    message = f"{receiving} {originating} {stream_id}".encode()
    return hmac.new(hashlib.sha256(secret).digest(), message, hashlib.sha256).hexdigest()
