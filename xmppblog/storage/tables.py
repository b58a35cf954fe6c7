# SPDX-License-Identifier: AGPL-3.0-or-later
"""SQLAlchemy mapped tables (storage layer). ORM rows never leave storage/.

Alembic's migrations describe the same schema without importing this module;
tests/migrations checks that autogenerate finds no difference.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BIGINT on PostgreSQL, INTEGER (the rowid alias, so autoincrementing) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class NodeRow(Base):
    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("service", "node", name="uq_nodes_service_node"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(1024))
    node: Mapped[str] = mapped_column(String(1024))
    owner: Mapped[str] = mapped_column(String(1024))
    access_model: Mapped[str] = mapped_column(String(16))
    max_items: Mapped[int] = mapped_column(Integer)
    notify_retract: Mapped[bool] = mapped_column(Boolean)
    title: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: a local cache of a node on another server, fed by federation
    remote: Mapped[bool] = mapped_column(Boolean, server_default=false())
    #: the owner's choice for network-wide indexes (core/discovery.py); NULL: the admin's default
    discoverable: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    #: when the owner last withdrew that consent (core/discovery.py)
    consent_withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ItemRow(Base):
    """Items of a node; `id` order is publish order (a republish gets a new id)."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("node_id", "item_id", name="uq_items_node_id_item_id"),
                      Index("ix_items_node_id_id", "node_id", "id"),
                      Index("ix_items_item_id", "item_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(256))
    publisher: Mapped[str] = mapped_column(String(1024))
    payload: Mapped[str] = mapped_column(Text)
    published: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SubscriptionRow(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("node_id", "jid", name="uq_subscriptions_node_id_jid"),
                      Index("ix_subscriptions_bare", "bare"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    jid: Mapped[str] = mapped_column(String(3071))
    bare: Mapped[str] = mapped_column(String(2047))
    state: Mapped[str] = mapped_column(String(16))
    #: 'event' (XEP-0060 notifications) or 'im' (chat messages to an IM follower)
    delivery: Mapped[str] = mapped_column(String(8), server_default="event")
    #: permanent delivery errors in a row (bounces); the subscription ends at a limit
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AffiliationRow(Base):
    __tablename__ = "affiliations"
    __table_args__ = (UniqueConstraint("node_id", "jid", name="uq_affiliations_node_id_jid"),
                      Index("ix_affiliations_jid", "jid"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    jid: Mapped[str] = mapped_column(String(2047))
    affiliation: Mapped[str] = mapped_column(String(16))


class ContactRow(Base):
    """The component's own roster: presence subscriptions between blog JIDs and contacts.

    `subscribed`: the contact receives the blog's presence (RFC 6121 'from');
    `sub_to`: the blog receives the contact's presence ('to');
    `pending_in`: the contact asked and the owner has not answered yet;
    `pending_out`: we asked for the contact's presence and got no answer yet.
    """

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("blog", "contact", name="uq_contacts_blog_contact"),
                      Index("ix_contacts_contact", "contact"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    blog: Mapped[str] = mapped_column(String(2047))
    contact: Mapped[str] = mapped_column(String(2047))
    subscribed: Mapped[bool] = mapped_column(Boolean)
    sub_to: Mapped[bool] = mapped_column(Boolean, server_default=false())
    pending_in: Mapped[bool] = mapped_column(Boolean, server_default=false())
    pending_out: Mapped[bool] = mapped_column(Boolean, server_default=false())


class ImUserRow(Base):
    """Per-user IM preferences."""

    __tablename__ = "im_users"

    jid: Mapped[str] = mapped_column(String(2047), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, server_default=false())


class TrackRow(Base):
    __tablename__ = "tracks"
    __table_args__ = (UniqueConstraint("jid", "word", name="uq_tracks_jid_word"),
                      Index("ix_tracks_word", "word"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    jid: Mapped[str] = mapped_column(String(2047))
    word: Mapped[str] = mapped_column(String(128))


class BlockRow(Base):
    __tablename__ = "blocks"
    __table_args__ = (UniqueConstraint("jid", "blocked", name="uq_blocks_jid_blocked"),
                      Index("ix_blocks_blocked", "blocked"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    jid: Mapped[str] = mapped_column(String(2047))
    blocked: Mapped[str] = mapped_column(String(2047))


class OutboxEventRow(Base):
    """A planned notification, stored once; `outbox` rows address it."""

    __tablename__ = "outbox_events"
    # AUTOINCREMENT: ids name notification stanzas (`n<id>`) and are never reused (0012_outbox_ids.py)
    __table_args__ = (Index("ix_outbox_events_next_at", "next_at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    sender: Mapped[str] = mapped_column(String(2047))
    node: Mapped[str] = mapped_column(String(1024))
    item_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    payload: Mapped[str | None] = mapped_column(Text, nullable=True)
    publisher: Mapped[str | None] = mapped_column(String(2047), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(3071), nullable=True)
    state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: local recipients not yet handed to the stream, newline-separated (the bulk path)
    recipients: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: when the bulk recipients are due; NULL once they were handed over
    next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: core/shards.shard_of(sender): which worker of a cluster sends it
    shard: Mapped[int] = mapped_column(SmallInteger, server_default="0")


class OutboxRow(Base):
    """One recipient of one planned notification; deleted once handed to a live stream."""

    __tablename__ = "outbox"
    # AUTOINCREMENT: a bounce names its row (`ob<id>`): never a newer row that took its id
    __table_args__ = (Index("ix_outbox_next_at", "next_at"),
                      Index("ix_outbox_unsent_next_at", "next_at", postgresql_where=text("sent_at IS NULL"),
                            sqlite_where=text("sent_at IS NULL")),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"))
    recipient: Mapped[str] = mapped_column(String(3071))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: set when handed to the stream for a remote recipient: kept a while to match bounces
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DeliveryCountRow(Base):
    """What became of the notifications of one post (or, with item_id '', of everything else
    one sender sent) to one recipient server ('' for this server's own users): written as the
    outbox forgets them, so `status ID` and `xmppblog stats` can tell afterwards."""

    __tablename__ = "delivery_counts"
    __table_args__ = (UniqueConstraint("sender", "node", "item_id", "server", name="uq_delivery_counts_sender"),
                      Index("ix_delivery_counts_created_at", "created_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sender: Mapped[str] = mapped_column(String(2047))
    node: Mapped[str] = mapped_column(String(1024))
    item_id: Mapped[str] = mapped_column(String(256))
    server: Mapped[str] = mapped_column(String(1024))
    delivered: Mapped[int] = mapped_column(BigInteger, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RemoteSubscriptionRow(Base):
    """A subscription this server holds at another pubsub service (consent record).

    `subscriber` is the service JID for server-level subscriptions (one for all
    local followers) or a local user's JID for protected remote nodes.
    """

    __tablename__ = "remote_subscriptions"
    __table_args__ = (UniqueConstraint("service", "node", "subscriber", name="uq_remote_subscriptions_service"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(2047))
    node: Mapped[str] = mapped_column(String(1024))
    subscriber: Mapped[str] = mapped_column(String(2047))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SpamDropRow(Base):
    """What spamguard refused, counted per reason and origin domain (`xmppblog stats`)."""

    __tablename__ = "spam_drops"
    __table_args__ = (UniqueConstraint("reason", "domain", name="uq_spam_drops_reason"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reason: Mapped[str] = mapped_column(String(64))
    domain: Mapped[str] = mapped_column(String(1024))
    count: Mapped[int] = mapped_column(BigInteger)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DomainPolicyRow(Base):
    """Domain block/allow list entries set at run time by admins (added to the config's)."""

    __tablename__ = "domain_policies"
    __table_args__ = (UniqueConstraint("domain", "policy", name="uq_domain_policies_domain"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(1024))
    policy: Mapped[str] = mapped_column(String(8))  # block | allow
    created_by: Mapped[str] = mapped_column(String(2047))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReportRow(Base):
    """Abuse reports from users (chat `report`, XEP-0377), for admins."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reporter: Mapped[str] = mapped_column(String(2047))
    target: Mapped[str] = mapped_column(String(2047))
    reason: Mapped[str] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ServerKeyRow(Base):
    """This server's Ed25519 signing keys; the newest active one signs, all stay published."""

    __tablename__ = "server_keys"
    __table_args__ = (UniqueConstraint("key_id", name="uq_server_keys_key_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(64))
    private_key: Mapped[str] = mapped_column(Text)   # raw 32 bytes, base64
    public_key: Mapped[str] = mapped_column(Text)    # raw 32 bytes, base64
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PeerKeyRow(Base):
    """Signing keys of other xmppblog servers, pinned when first seen (trust on first use):
    once a domain signed, it must keep signing, with these keys or keys published beside them."""

    __tablename__ = "peer_keys"
    __table_args__ = (UniqueConstraint("domain", "key_id", name="uq_peer_keys_domain"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(1024))
    key_id: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(Text)   # raw 32 bytes, base64
    pinned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ClusterWorkerRow(Base):
    """A live worker of a cluster ([cluster] enabled): its last heartbeat."""

    __tablename__ = "cluster_workers"

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: a connection of it holds a slot: it can send, so it takes a share of the outbox
    serving: Mapped[bool] = mapped_column(Boolean, server_default=false())
    #: the process beating under this id (another live one with the same id is refused)
    token: Mapped[str] = mapped_column(String(32), server_default="")


class ClusterLeaseRow(Base):
    """Who holds an outbox shard (`shard:N`), until when."""

    __tablename__ = "cluster_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(160), nullable=True)
    until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class OnlineContactRow(Base):
    """A contact that `worker` saw online (UNLOGGED on PostgreSQL: rebuilt from presence)."""

    __tablename__ = "online_contacts"
    __table_args__ = (Index("ix_online_contacts_worker", "worker"),)

    contact: Mapped[str] = mapped_column(String(3071), primary_key=True)
    worker: Mapped[str] = mapped_column(String(160), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SpamUsageRow(Base):
    """A limited key's shared bucket in a cluster (spamguard/shared.py): full again at `drained_at`.
    UNLOGGED on PostgreSQL; unused on SQLite."""

    __tablename__ = "spam_usage"

    #: the limit's name and a bare JID or registrable domain, as in "subscribes:jid:eve@spam.example"
    key: Mapped[str] = mapped_column(String(2100), primary_key=True)
    drained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ClusterVersionRow(Base):
    """How often a piece of in-memory state (a block list) was changed by some worker."""

    __tablename__ = "cluster_versions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
