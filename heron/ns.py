"""Every XML namespace Heron speaks, as a named constant (never an inline literal)."""

from typing import Final

XML: Final = "http://www.w3.org/XML/1998/namespace"
STREAM: Final = "http://etherx.jabber.org/streams"
CLIENT: Final = "jabber:client"
SERVER: Final = "jabber:server"
DIALBACK: Final = "jabber:server:dialback"
DIALBACK_FEATURE: Final = "urn:xmpp:features:dialback"
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

# Stream transports other than TCP
WS_FRAMING: Final = "urn:ietf:params:xml:ns:xmpp-framing"  # RFC 7395
HTTPBIND: Final = "http://jabber.org/protocol/httpbind"  # XEP-0124
XBOSH: Final = "urn:xmpp:xbosh"  # XEP-0206

# IM and account features
ROSTER: Final = "jabber:iq:roster"
ROSTER_VER_FEATURE: Final = "urn:xmpp:features:rosterver"
LAST: Final = "jabber:iq:last"  # XEP-0012
PRIVATE: Final = "jabber:iq:private"  # XEP-0049
VCARD: Final = "vcard-temp"  # XEP-0054
VCARD_UPDATE: Final = "vcard-temp:x:update"  # XEP-0153
VCARD_CONVERSION: Final = "urn:xmpp:pep-vcard-conversion:0"  # XEP-0398
PARS: Final = "urn:xmpp:pars:0"  # XEP-0379
IBR_PREAUTH: Final = "urn:xmpp:ibr-token:0"  # XEP-0445
BLOCKING: Final = "urn:xmpp:blocking"  # XEP-0191
BLOCKING_ERRORS: Final = "urn:xmpp:blocking:errors"
REPORTING: Final = "urn:xmpp:reporting:1"  # XEP-0377
CSI: Final = "urn:xmpp:csi:0"  # XEP-0352
CHATSTATES: Final = "http://jabber.org/protocol/chatstates"  # XEP-0085
PUSH: Final = "urn:xmpp:push:0"  # XEP-0357
PUSH_SUMMARY: Final = "urn:xmpp:push:summary"
UPLOAD: Final = "urn:xmpp:http:upload:0"  # XEP-0363
EXTDISCO: Final = "urn:xmpp:extdisco:2"  # XEP-0215
BYTESTREAMS: Final = "http://jabber.org/protocol/bytestreams"  # XEP-0065
CAPS: Final = "http://jabber.org/protocol/caps"  # XEP-0115
SERVERINFO: Final = "http://jabber.org/network/serverinfo"  # XEP-0157

# Archives (XEP-0313) and what they page and stamp with
MAM: Final = "urn:xmpp:mam:2"
MAM_EXTENDED: Final = "urn:xmpp:mam:2#extended"
RSM: Final = "http://jabber.org/protocol/rsm"  # XEP-0059
SID: Final = "urn:xmpp:sid:0"  # XEP-0359

# Multi-user chat (XEP-0045) and what rooms use
MUC: Final = "http://jabber.org/protocol/muc"
MUC_USER: Final = "http://jabber.org/protocol/muc#user"
MUC_ADMIN: Final = "http://jabber.org/protocol/muc#admin"
MUC_OWNER: Final = "http://jabber.org/protocol/muc#owner"
MUC_REQUEST: Final = "http://jabber.org/protocol/muc#request"
MUC_REGISTER: Final = "http://jabber.org/protocol/muc#register"
MUC_ROOMCONFIG: Final = "http://jabber.org/protocol/muc#roomconfig"
MUC_ROOMINFO: Final = "http://jabber.org/protocol/muc#roominfo"
MUC_SELF_PING: Final = "http://jabber.org/protocol/muc#self-ping-optimization"  # XEP-0410
OCCUPANT_ID: Final = "urn:xmpp:occupant-id:0"  # XEP-0421
MODERATE: Final = "urn:xmpp:message-moderate:1"  # XEP-0425
RETRACT: Final = "urn:xmpp:message-retract:1"  # XEP-0424
FALLBACK: Final = "urn:xmpp:fallback:0"  # XEP-0428
CHANNEL_SEARCH: Final = "urn:xmpp:channel-search:0:search"  # XEP-0433
CHANNEL_SEARCH_PARAMS: Final = "urn:xmpp:channel-search:0:search-params"
CHANNEL_SEARCH_ERRORS: Final = "urn:xmpp:channel-search:0:error"
CHANNEL_SEARCH_ANONYMITY: Final = "urn:xmpp:channel-search:0:anonymity"

# Publish-subscribe (XEP-0060) and what PEP carries
PUBSUB: Final = "http://jabber.org/protocol/pubsub"
PUBSUB_OWNER: Final = "http://jabber.org/protocol/pubsub#owner"
PUBSUB_EVENT: Final = "http://jabber.org/protocol/pubsub#event"
PUBSUB_ERRORS: Final = "http://jabber.org/protocol/pubsub#errors"
PUBSUB_NODE_CONFIG: Final = "http://jabber.org/protocol/pubsub#node_config"
PUBSUB_PUBLISH_OPTIONS: Final = "http://jabber.org/protocol/pubsub#publish-options"
PUBSUB_SUBSCRIBE_AUTHORIZATION: Final = "http://jabber.org/protocol/pubsub#subscribe_authorization"
PUBSUB_SUBSCRIBE_OPTIONS: Final = "http://jabber.org/protocol/pubsub#subscribe_options"
AVATAR_DATA: Final = "urn:xmpp:avatar:data"  # XEP-0084
AVATAR_METADATA: Final = "urn:xmpp:avatar:metadata"
BOOKMARKS: Final = "urn:xmpp:bookmarks:1"  # XEP-0402
BOOKMARKS_COMPAT: Final = "urn:xmpp:bookmarks:1#compat"
BOOKMARKS_LEGACY: Final = "storage:bookmarks"  # XEP-0048
