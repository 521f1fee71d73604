"""The gateway's own tables: messages (the durable send queue), their parts, events and stray receipts."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, UTCDateTime, utcnow


class MessageStatus(str, enum.Enum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    BLOCKED = "blocked"
    EXPIRED = "expired"


FINAL_STATUSES = frozenset(
    {MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED, MessageStatus.BLOCKED,
     MessageStatus.EXPIRED}
)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_queue", "status", "next_attempt_at", "id"),
        Index("ix_messages_account_status", "account_id", "status"),
        Index("ix_messages_account_created", "account_id", "created_at"),  # stats, retention
        # a person's messages (search by phone, erasure) and what an inbound message answers: the last one the
        # account sent the person from the number (two_way.inbound._LAST_SENT). With the destination alone,
        # SQLite's planner took the account's index for a batch of people: a scan of all its messages per batch
        Index("ix_messages_conversation", "destination", "account_id", "source"),
        UniqueConstraint("account_id", "idempotency_key", name="uq_messages_idempotency"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # queue order
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(20))
    destination: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    encoding: Mapped[str] = mapped_column(String(10))  # gsm7 | ucs2
    segments: Mapped[int] = mapped_column(Integer)
    characters: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=MessageStatus.QUEUED.value)
    error_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    carrier: Mapped[str | None] = mapped_column(String(50), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # next_attempt_at is a slot reserved by pacing: send at that time without asking the limits again
    paced: Mapped[bool] = mapped_column(Boolean, default=False)
    # the gateway instance that holds it while it is `sending` (several processes may share one queue)
    claimed_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # what the key was given with (gateway.store.idempotency.fingerprint): the same key with another request is refused
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status_callback: Mapped[str | None] = mapped_column(Text, nullable=True)
    status_callback_events: Mapped[str | None] = mapped_column(Text, nullable=True)  # as Account.webhook_events
    message_type: Mapped[str] = mapped_column(String(20), default="transactional")  # or promotional
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class GatewayInstance(Base):
    """A running gateway process: its heartbeat is the lease on the messages it has claimed."""

    __tablename__ = "gateway_instances"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class StoredRoute(Base):
    """A route added through the operator API (gateway.sending.route_store): tried before the configured ones, in
    ``position`` order; ``spec`` is its [[routes]] table as JSON."""

    __tablename__ = "routes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    position: Mapped[int] = mapped_column(Integer)
    spec: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessagePart(Base):
    """One submit_sm of a message as the carrier knows it: what the carrier answered to it (its message id, or
    the refusal it is submitted again after), how often it was submitted, and its own receipt state. A
    multipart message's parts are written as their answers come, so that an accepted part is never submitted
    again, not even after a crash between parts."""

    __tablename__ = "message_parts"
    __table_args__ = (UniqueConstraint("message_id", "seq", name="uq_message_parts_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # the part number in the concatenation header, from 1
    carrier: Mapped[str] = mapped_column(String(50))
    # as the carrier answered it; None while the part is refused (it is submitted again)
    carrier_message_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    carrier_id_norm: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)  # for receipt lookup
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # submit_sm of this part
    answer: Mapped[str | None] = mapped_column(String(50), nullable=True)  # accepted, or the refusal's code
    stat: Mapped[str | None] = mapped_column(String(10), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UnmatchedReceipt(Base):
    """A receipt whose id matched no part (yet): kept, and matched when the submit result is stored."""

    __tablename__ = "unmatched_receipts"
    __table_args__ = (Index("ix_unmatched_receipts_received_at", "received_at"),)  # dropped when old

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    carrier: Mapped[str] = mapped_column(String(50))
    carrier_message_id: Mapped[str] = mapped_column(String(80))
    lookup_id: Mapped[str] = mapped_column(String(80), index=True)  # the normalized submit-side id it refers to
    stat: Mapped[str] = mapped_column(String(10))
    error_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    raw: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessageEvent(Base):
    """The history of a message (TEXT_QUEUED, TEXT_SENT, ...): what the customer is told about."""

    __tablename__ = "message_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """The outbox: one event or inbound message to POST to a customer's URL, kept until delivered."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at", "id"),
                      Index("ix_webhook_deliveries_created", "created_at"))  # retention

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # event | inbound
    event_type: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(Text)
    # where it connects (scheme://host:port): deliveries to one receiver share its connections and its backoff
    receiver: Mapped[str | None] = mapped_column(Text, nullable=True)
    payload: Mapped[str] = mapped_column(Text)  # the exact JSON body that is signed and sent
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    give_up_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # set at first try


class WebhookAttempt(Base):
    """One try at a webhook delivery: when, and what the customer's server answered."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class InboundMessage(Base):
    """A message a person sent to a leased number (multipart ones reassembled)."""

    __tablename__ = "inbound_messages"
    __table_args__ = (Index("ix_inbound_account", "account_id", "id"),
                      Index("ix_inbound_account_received", "account_id", "received_at"))  # stats, retention

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True)
    number: Mapped[str] = mapped_column(String(20))  # the leased number it was sent to
    source: Mapped[str] = mapped_column(String(20), index=True)  # the person
    body: Mapped[str] = mapped_column(Text)
    segments: Mapped[int] = mapped_column(Integer, default=1)
    complete: Mapped[bool] = mapped_column(Boolean, default=True)  # False: parts never all arrived
    keyword: Mapped[str | None] = mapped_column(String(40), nullable=True)
    action: Mapped[str | None] = mapped_column(String(20), nullable=True)  # opt_out | opt_in | help | auto_response
    in_reply_to: Mapped[str | None] = mapped_column(String(40), nullable=True)
    reply_id: Mapped[str | None] = mapped_column(String(40), nullable=True)  # our automatic reply, if any
    forwarded: Mapped[bool] = mapped_column(Boolean, default=False)
    carrier: Mapped[str] = mapped_column(String(50))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundPart(Base):
    """One part of a multipart inbound message, kept until the set is complete (or times out)."""

    __tablename__ = "inbound_parts"
    __table_args__ = (UniqueConstraint("carrier", "source", "destination", "ref", "seq", name="uq_inbound_parts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    carrier: Mapped[str] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(String(20))
    destination: Mapped[str] = mapped_column(String(20))
    ref: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # set when its message was handed on; kept for the reassembly window so a late repeat is recognized
    assembled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class InboundSeen(Base):
    """An inbound message or part as a carrier handed it (its identity: a digest of carrier, addresses, coding,
    concatenation and text), kept for ``[messages] inbound_dedupe_s``: one the SMSC sends again (its answer was
    lost with a connection) is acknowledged and not handled twice. Written with what it brought."""

    __tablename__ = "inbound_seen"
    __table_args__ = (Index("ix_inbound_seen_at", "seen_at"),)  # forgotten after the window

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class NumberKeyword(Base):
    """A customer's keyword on one of its numbers."""

    __tablename__ = "number_keywords"
    __table_args__ = (UniqueConstraint("number_id", "keyword", name="uq_number_keywords"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number_id: Mapped[int] = mapped_column(ForeignKey("numbers.id", ondelete="CASCADE"), index=True)
    keyword: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class VoiceMessage(Base):
    """A text script delivered as a phone call."""

    __tablename__ = "voice_messages"
    __table_args__ = (Index("ix_voice_account", "account_id", "id"),
                      Index("uq_voice_idempotency", "account_id", "idempotency_key", unique=True))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(20))
    destination: Mapped[str] = mapped_column(String(20))
    script: Mapped[str] = mapped_column(Text)  # with variables filled in, as rendered
    markup: Mapped[bool] = mapped_column(Boolean, default=False)
    voice: Mapped[str] = mapped_column(String(40))
    audio_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    audio_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    carrier_call_id: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    call_seconds: Mapped[float | None] = mapped_column(Numeric(10, 2, asdecimal=False), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status_callback: Mapped[str | None] = mapped_column(Text, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class VoiceEvent(Base):
    __tablename__ = "voice_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    voice_message_id: Mapped[int] = mapped_column(ForeignKey("voice_messages.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
