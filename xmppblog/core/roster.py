# SPDX-License-Identifier: AGPL-3.0-or-later
"""Roster rules: presence subscriptions between blog JIDs and their followers (core layer).

Following by roster (RFC 6121 presence subscription to a blog JID) and
following by chat end in the same state: an IM subscription to the blog's
node, a mutual presence subscription so the component learns who is online,
and the owner's approval on protected blogs. Presence stanzas to send are
returned as outbox events, durable like every notification.
"""

from __future__ import annotations

from dataclasses import replace

from .model import Contact, EventKind, Node, OutboxEvent

AVAILABLE = "available"


def presence(blog: str, to: str, ptype: str, status: str | None = None) -> OutboxEvent:
    return OutboxEvent(EventKind.PRESENCE, blog, "", (to,), payload=status, state=ptype)


def welcome(contact: Contact, status: str) -> tuple[Contact, list[OutboxEvent]]:
    """The contact may now see the blog: approve, show presence, ask for theirs."""
    events = [presence(contact.blog, contact.contact, "subscribed"),
              presence(contact.blog, contact.contact, AVAILABLE, status)]
    contact, ask = ask_presence(replace(contact, subscribed=True, pending_in=False), force=True)
    return contact, events + ask


def ask_presence(contact: Contact, force: bool = False) -> tuple[Contact, list[OutboxEvent]]:
    """Ask for the contact's presence, once: after a chat `follow` the blog JID appears in
    the follower's roster; after a first chat with the service, the component learns
    when that user is online. `force` asks again even if an earlier request got no answer."""
    if contact.sub_to or (contact.pending_out and not force):
        return contact, []
    return replace(contact, pending_out=True), [presence(contact.blog, contact.contact, "subscribe")]


def refuse(contact: Contact) -> tuple[Contact, list[OutboxEvent]]:
    events = []
    if contact.pending_in or contact.subscribed:
        events.append(presence(contact.blog, contact.contact, "unsubscribed"))
    return replace(contact, subscribed=False, pending_in=False), events


def farewell(contact: Contact) -> tuple[Contact, list[OutboxEvent]]:
    """An unfollow by chat: remove the blog JID from the follower's roster both ways."""
    events = []
    if contact.sub_to:
        events.append(presence(contact.blog, contact.contact, "unsubscribe"))
    if contact.subscribed or contact.pending_in:
        events.append(presence(contact.blog, contact.contact, "unsubscribed"))
    return Contact(contact.blog, contact.contact), events


def status_of(node: Node | None, latest_text: str | None) -> str:
    if latest_text:
        return latest_text[:140]
    return "microblog" if node is None else (node.config.title or "microblog")
