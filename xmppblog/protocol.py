# SPDX-License-Identifier: AGPL-3.0-or-later
"""Every XML namespace and well-known node name xmppblog speaks (bottom layer).

Constants only, stdlib-free: any layer may import this module, so no layer
has a reason to spell a namespace again.
"""

# RFC 6120 / XEP-0114
NS_COMPONENT = "jabber:component:accept"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

# XEP-0060 Publish-Subscribe
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_OWNER = NS_PUBSUB + "#owner"
NS_PUBSUB_EVENT = NS_PUBSUB + "#event"
NS_PUBSUB_ERRORS = NS_PUBSUB + "#errors"
NS_PUBSUB_NODE_CONFIG = NS_PUBSUB + "#node_config"
NS_PUBSUB_PUBLISH_OPTIONS = NS_PUBSUB + "#publish-options"
NS_PUBSUB_META_DATA = NS_PUBSUB + "#meta-data"
NS_PUBSUB_SUB_AUTH = NS_PUBSUB + "#subscribe_authorization"
NS_PUBSUB_GET_PENDING = NS_PUBSUB + "#get-pending"

# other XEPs
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"      # XEP-0030
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_RSM = "http://jabber.org/protocol/rsm"                    # XEP-0059
NS_DATA = "jabber:x:data"                                     # XEP-0004
NS_ADDRESS = "http://jabber.org/protocol/address"            # XEP-0033
NS_COMMANDS = "http://jabber.org/protocol/commands"          # XEP-0050
NS_PING = "urn:xmpp:ping"                                     # XEP-0199
NS_VERSION = "jabber:iq:version"                              # XEP-0092
NS_NICK = "http://jabber.org/protocol/nick"                  # XEP-0172
NS_VCARD = "vcard-temp"                                       # XEP-0054
NS_BLOCKING = "urn:xmpp:blocking"                             # XEP-0191
NS_REPORTING = "urn:xmpp:reporting:1"                         # XEP-0377
REPORT_ABUSE = "urn:xmpp:reporting:abuse"
NS_XHTML = "http://www.w3.org/1999/xhtml"
NS_MAM = "urn:xmpp:mam:2"                                     # XEP-0313
NS_FORWARD = "urn:xmpp:forward:0"                             # XEP-0297
NS_DELAY = "urn:xmpp:delay"                                   # XEP-0203
NS_FULLTEXT = "urn:xmpp:fulltext:0"                           # XEP-0431
NS_SOCIAL_FEED = "urn:xmpp:pubsub-social-feed:1"              # XEP-0472
NS_ORDER_BY = "urn:xmpp:order-by:0"                           # XEP-0413
NS_CLIENT = "jabber:client"

# Atom (RFC 4287) and XEP-0277
NS_ATOM = "http://www.w3.org/2005/Atom"
NS_THR = "http://purl.org/syndication/thread/1.0"
NS_MICROBLOG = "urn:xmpp:microblog:0"
COMMENTS_PREFIX = NS_MICROBLOG + ":comments/"
#: XEP-0470 Pubsub Attachments: a post's attachments node is this prefix and the post's xmpp: URI
NS_PUBSUB_ATTACHMENTS = "urn:xmpp:pubsub-attachments:1"
ATTACHMENTS_PREFIX = NS_PUBSUB_ATTACHMENTS + "/"

#: xmppblog's own disco#info feature ("this service is an xmppblog server") and the
#: namespace of its signatures and keys; README.md "Federation" and "Signed posts".
NS_XMPPBLOG = "urn:xmppblog:0"
#: the service JID's node carrying this server's signing keys
NS_KEYS_NODE = "urn:xmppblog:keys:0"
#: the service JID's node of every discoverable public post (core/discovery.py)
NS_FIREHOSE = "urn:xmppblog:firehose:0"
