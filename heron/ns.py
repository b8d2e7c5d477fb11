"""Every XML namespace Heron speaks, as a named constant (never an inline literal)."""

from typing import Final

XML: Final = "http://www.w3.org/XML/1998/namespace"
XML_LANG: Final = "{" + XML + "}lang"  # the xml:lang attribute, as Element names it
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
# Channel-binding types (XEP-0440), SASL2 (XEP-0388), Bind2 (XEP-0386), FAST (XEP-0484)
SASL_CB: Final = "urn:xmpp:sasl-cb:0"
SASL2: Final = "urn:xmpp:sasl:2"
SASL_UPGRADE: Final = "urn:xmpp:sasl:upgrade:0"  # XEP-0480
SCRAM_UPGRADE: Final = "urn:xmpp:scram-upgrade:0"  # XEP-0480 §4
BIND2: Final = "urn:xmpp:bind:0"
FAST: Final = "urn:xmpp:fast:0"
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
# The XEP-0156 link relation of the WebSocket endpoint; Jingle message initiation (XEP-0353)
WEBSOCKET_REL: Final = "urn:xmpp:alt-connections:websocket"
XBOSH_REL: Final = "urn:xmpp:alt-connections:xbosh"
JINGLE_MESSAGE: Final = "urn:xmpp:jingle-message:0"


# Other transports: WebSocket (RFC 7395), BOSH (XEP-0124, XEP-0206)
WS_FRAMING: Final = "urn:ietf:params:xml:ns:xmpp-framing"
HTTPBIND: Final = "http://jabber.org/protocol/httpbind"
XBOSH: Final = "urn:xmpp:xbosh"

# IM and accounts: roster (RFC 6121), last activity (XEP-0012), private XML (XEP-0049),
# vCards (XEP-0054, XEP-0153, XEP-0398), pre-authenticated registration (XEP-0379,
# XEP-0445), blocking and reporting (XEP-0191, XEP-0377), CSI (XEP-0352), chat states
# (XEP-0085), push (XEP-0357), upload (XEP-0363), external services (XEP-0215), the
# SOCKS5 proxy (XEP-0065), entity capabilities (XEP-0115), contact addresses (XEP-0157)
ROSTER: Final = "jabber:iq:roster"
ROSTER_VER_FEATURE: Final = "urn:xmpp:features:rosterver"
LAST: Final = "jabber:iq:last"
PRIVATE: Final = "jabber:iq:private"
VCARD: Final = "vcard-temp"
VCARD_UPDATE: Final = "vcard-temp:x:update"
VCARD_CONVERSION: Final = "urn:xmpp:pep-vcard-conversion:0"
PARS: Final = "urn:xmpp:pars:0"
IBR_PREAUTH: Final = "urn:xmpp:ibr-token:0"
BLOCKING: Final = "urn:xmpp:blocking"
BLOCKING_ERRORS: Final = "urn:xmpp:blocking:errors"
REPORTING: Final = "urn:xmpp:reporting:1"
CSI: Final = "urn:xmpp:csi:0"
CHATSTATES: Final = "http://jabber.org/protocol/chatstates"
PUSH: Final = "urn:xmpp:push:0"
PUSH_SUMMARY: Final = "urn:xmpp:push:summary"
UPLOAD: Final = "urn:xmpp:http:upload:0"
EXTDISCO: Final = "urn:xmpp:extdisco:2"
BYTESTREAMS: Final = "http://jabber.org/protocol/bytestreams"
CAPS: Final = "http://jabber.org/protocol/caps"
SERVERINFO: Final = "http://jabber.org/network/serverinfo"

# Ad-hoc commands (XEP-0050) and the service administration forms (XEP-0133)
COMMANDS: Final = "http://jabber.org/protocol/commands"
ADMIN: Final = "http://jabber.org/protocol/admin"

# Archives (XEP-0313), result set management (XEP-0059), stanza ids (XEP-0359)
MAM: Final = "urn:xmpp:mam:2"
MAM_EXTENDED: Final = "urn:xmpp:mam:2#extended"
RSM: Final = "http://jabber.org/protocol/rsm"
SID: Final = "urn:xmpp:sid:0"

# Multi-user chat (XEP-0045) and what rooms use: self-ping (XEP-0410), occupant ids
# (XEP-0421), moderation (XEP-0425), retraction (XEP-0424), fallback (XEP-0428), channel
# search (XEP-0433)
MUC: Final = "http://jabber.org/protocol/muc"
MUC_USER: Final = "http://jabber.org/protocol/muc#user"
MUC_ADMIN: Final = "http://jabber.org/protocol/muc#admin"
MUC_OWNER: Final = "http://jabber.org/protocol/muc#owner"
MUC_REQUEST: Final = "http://jabber.org/protocol/muc#request"
MUC_REGISTER: Final = "http://jabber.org/protocol/muc#register"
MUC_ROOMCONFIG: Final = "http://jabber.org/protocol/muc#roomconfig"
MUC_ROOMINFO: Final = "http://jabber.org/protocol/muc#roominfo"
MUC_SELF_PING: Final = "http://jabber.org/protocol/muc#self-ping-optimization"
OCCUPANT_ID: Final = "urn:xmpp:occupant-id:0"
MODERATE: Final = "urn:xmpp:message-moderate:1"
RETRACT: Final = "urn:xmpp:message-retract:1"
FALLBACK: Final = "urn:xmpp:fallback:0"
CHANNEL_SEARCH: Final = "urn:xmpp:channel-search:0:search"
CHANNEL_SEARCH_PARAMS: Final = "urn:xmpp:channel-search:0:search-params"
CHANNEL_SEARCH_ERRORS: Final = "urn:xmpp:channel-search:0:error"
CHANNEL_SEARCH_ANONYMITY: Final = "urn:xmpp:channel-search:0:anonymity"
CHANNEL_SEARCH_ORDER: Final = "urn:xmpp:channel-search:0:order"

# Publish-subscribe (XEP-0060) and what PEP carries: avatars (XEP-0084), bookmarks
# (XEP-0402, and XEP-0048's private-XML form)
PUBSUB: Final = "http://jabber.org/protocol/pubsub"
PUBSUB_OWNER: Final = "http://jabber.org/protocol/pubsub#owner"
PUBSUB_EVENT: Final = "http://jabber.org/protocol/pubsub#event"
PUBSUB_ERRORS: Final = "http://jabber.org/protocol/pubsub#errors"
PUBSUB_NODE_CONFIG: Final = "http://jabber.org/protocol/pubsub#node_config"
PUBSUB_PUBLISH_OPTIONS: Final = "http://jabber.org/protocol/pubsub#publish-options"
PUBSUB_SUBSCRIBE_AUTHORIZATION: Final = "http://jabber.org/protocol/pubsub#subscribe_authorization"
PUBSUB_SUBSCRIBE_OPTIONS: Final = "http://jabber.org/protocol/pubsub#subscribe_options"
SHIM: Final = "http://jabber.org/protocol/shim"  # stanza headers (XEP-0131), as pubsub uses them
AVATAR_DATA: Final = "urn:xmpp:avatar:data"
AVATAR_METADATA: Final = "urn:xmpp:avatar:metadata"
BOOKMARKS: Final = "urn:xmpp:bookmarks:1"
BOOKMARKS_COMPAT: Final = "urn:xmpp:bookmarks:1#compat"
BOOKMARKS_LEGACY: Final = "storage:bookmarks"
# XEP-0227: portable import/export
PIE: Final = "urn:xmpp:pie:0"
PIE_SCRAM: Final = "urn:xmpp:pie:0#scram"
XINCLUDE: Final = "http://www.w3.org/2001/XInclude"
