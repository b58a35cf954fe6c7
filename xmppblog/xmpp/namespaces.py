# SPDX-License-Identifier: AGPL-3.0-or-later
"""XML namespaces used on the wire (wire layer)."""

NS_COMPONENT = "jabber:component:accept"
NS_CLIENT = "jabber:client"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_OWNER = NS_PUBSUB + "#owner"
NS_PUBSUB_EVENT = NS_PUBSUB + "#event"
NS_PUBSUB_ERRORS = NS_PUBSUB + "#errors"
NS_PUBSUB_NODE_CONFIG = NS_PUBSUB + "#node_config"
NS_PUBSUB_PUBLISH_OPTIONS = NS_PUBSUB + "#publish-options"
NS_PUBSUB_META_DATA = NS_PUBSUB + "#meta-data"
NS_PUBSUB_SUB_AUTH = NS_PUBSUB + "#subscribe_authorization"
NS_PUBSUB_GET_PENDING = NS_PUBSUB + "#get-pending"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_DATA = "jabber:x:data"
NS_ADDRESS = "http://jabber.org/protocol/address"  # XEP-0033
NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_PING = "urn:xmpp:ping"
NS_VERSION = "jabber:iq:version"
NS_ATOM = "http://www.w3.org/2005/Atom"
NS_THR = "http://purl.org/syndication/thread/1.0"
NS_MICROBLOG = "urn:xmpp:microblog:0"
#: xmppblog's own disco#info feature: "this service is an xmppblog server".
#: Documented in README.md ("Federation"): peers use it to find blog JIDs.
NS_XMPPBLOG = "urn:xmppblog:0"
