"""Every XML namespace Heron speaks, as a named constant (never an inline literal)."""

from typing import Final

XML: Final = "http://www.w3.org/XML/1998/namespace"
STREAM: Final = "http://etherx.jabber.org/streams"
CLIENT: Final = "jabber:client"
SERVER: Final = "jabber:server"
DIALBACK: Final = "jabber:server:dialback"
DIALBACK_FEATURE: Final = "urn:xmpp:features:dialback"
BIDI: Final = "urn:xmpp:bidi"  # XEP-0288
BIDI_FEATURE: Final = "urn:xmpp:features:bidi"
COMPONENT: Final = "jabber:component:accept"
STREAMS_ERRORS: Final = "urn:ietf:params:xml:ns:xmpp-streams"
STANZAS_ERRORS: Final = "urn:ietf:params:xml:ns:xmpp-stanzas"
TLS: Final = "urn:ietf:params:xml:ns:xmpp-tls"
SASL: Final = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND: Final = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION: Final = "urn:ietf:params:xml:ns:xmpp-session"
SASL_CB: Final = "urn:xmpp:sasl-cb:0"  # XEP-0440
SASL2: Final = "urn:xmpp:sasl:2"  # XEP-0388
BIND2: Final = "urn:xmpp:bind:0"  # XEP-0386
FAST: Final = "urn:xmpp:fast:0"  # XEP-0484
DISCO_INFO: Final = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS: Final = "http://jabber.org/protocol/disco#items"
PING: Final = "urn:xmpp:ping"
VERSION: Final = "jabber:iq:version"
TIME: Final = "urn:xmpp:time"
REGISTER: Final = "jabber:iq:register"
REGISTER_FEATURE: Final = "http://jabber.org/features/iq-register"
DATA_FORMS: Final = "jabber:x:data"
DELAY: Final = "urn:xmpp:delay"
CARBONS: Final = "urn:xmpp:carbons:2"
SM: Final = "urn:xmpp:sm:3"
FORWARD: Final = "urn:xmpp:forward:0"
HINTS: Final = "urn:xmpp:hints"
WEBSOCKET_REL: Final = "urn:xmpp:alt-connections:websocket"  # XEP-0156 link relation
JINGLE_MESSAGE: Final = "urn:xmpp:jingle-message:0"  # XEP-0353
