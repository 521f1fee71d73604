"""Accounts, their API keys and the numbers they lease."""

from __future__ import annotations

import datetime as dt
import enum
import functools

from sqlalchemy import Boolean, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, UTCDateTime, utcnow


class NumberStatus(str, enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    ASSOCIATING = "associating"
    DISASSOCIATING = "disassociating"
    RELEASED = "released"


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    max_rate_per_s: Mapped[float] = mapped_column(Numeric(10, 3, asdecimal=False), default=20.0)
    event_webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # which events the event webhook gets: NULL all, "final", or event types joined by commas (gateway.webhooks.catalog)
    webhook_events: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_batch_size: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # events per POST
    smart_encoding: Mapped[bool] = mapped_column(Boolean, default=False)  # curly quotes etc. -> GSM look-alikes
    quiet_hours: Mapped[bool] = mapped_column(Boolean, default=False)  # no promotional SMS 21:00-08:00 local
    queue_policy: Mapped[str] = mapped_column(String(10), default="queue")  # queue | reject (429 over max_queued)
    max_queued: Mapped[int] = mapped_column(Integer, default=100_000)
    program_name: Mapped[str | None] = mapped_column(String(200), nullable=True)  # in HELP/STOP replies
    support_contact: Mapped[str | None] = mapped_column(String(200), nullable=True)
    message_frequency: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OptOut(Base):
    """A phone number that opted out: from the account's default list, or from one number's own list."""

    __tablename__ = "opt_outs"
    __table_args__ = (UniqueConstraint("account_id", "list_name", "phone", name="uq_opt_outs_entry"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    list_name: Mapped[str] = mapped_column(String(100), default="default")
    phone: Mapped[str] = mapped_column(String(20), index=True)
    source: Mapped[str] = mapped_column(String(20), default="api")  # keyword | api | import | operator
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    """An account's API key, stored as its SHA-256 (keys are 256-bit random: a slow hash adds nothing)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown to people to tell keys apart
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Number(Base):
    """An origination identity the operator holds: short code, long code, 10DLC or toll-free number."""

    __tablename__ = "numbers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)  # E.164, or the short code's digits
    type: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))
    capabilities: Mapped[str] = mapped_column(String(40), default="sms")  # comma list: sms,voice
    carrier: Mapped[str | None] = mapped_column(String(50), nullable=True)
    monthly_price: Mapped[float | None] = mapped_column(Numeric(10, 4, asdecimal=False), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default=NumberStatus.ACTIVE.value)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True, index=True
    )
    message_type: Mapped[str] = mapped_column(String(20), default="transactional")
    two_way_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    two_way_webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    deletion_protection: Mapped[bool] = mapped_column(Boolean, default=False)
    international: Mapped[bool] = mapped_column(Boolean, default=False)
    opt_out_list: Mapped[str | None] = mapped_column(String(100), nullable=True)  # its own list, besides "default"
    help_message: Mapped[str | None] = mapped_column(Text, nullable=True)  # custom HELP reply (default: built)
    stop_message: Mapped[str | None] = mapped_column(Text, nullable=True)  # custom STOP reply
    self_managed_opt_outs: Mapped[bool] = mapped_column(Boolean, default=False)  # no auto replies; forward only
    # 10DLC: the campaign the number belongs to (at most one), and when the registry finishes (dis)associating it
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"), nullable=True,
                                                    index=True)
    registry_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    leased_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def capability_set(self) -> frozenset[str]:
        return _capability_set(self.capabilities)


@functools.lru_cache(maxsize=256)
def _capability_set(capabilities: str) -> frozenset[str]:
    """'sms,voice' -> {'sms', 'voice'}; a handful of distinct values, asked for each number of each message."""
    return frozenset(c for c in capabilities.split(",") if c)


class Brand(Base):
    """A 10DLC brand: the company behind the messages."""

    __tablename__ = "brands"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    legal_name: Mapped[str] = mapped_column(String(255))
    ein: Mapped[str] = mapped_column(String(20))
    entity_type: Mapped[str] = mapped_column(String(30))
    vertical: Mapped[str] = mapped_column(String(50))
    website: Mapped[str] = mapped_column(String(255))
    country: Mapped[str] = mapped_column(String(2))
    contact_email: Mapped[str] = mapped_column(String(255))
    contact_phone: Mapped[str | None] = mapped_column(String(20), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="created")  # registration status
    identity_status: Mapped[str] = mapped_column(String(20), default="unverified")
    trust_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Campaign(Base):
    """A 10DLC campaign: one use case of a brand's messaging."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id", ondelete="CASCADE"), index=True)
    use_case: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text)
    sample_messages: Mapped[str] = mapped_column(Text)  # JSON list of 2-5 samples
    opt_in_message: Mapped[str] = mapped_column(Text)
    opt_out_message: Mapped[str] = mapped_column(Text)
    help_message: Mapped[str] = mapped_column(Text)
    embedded_links: Mapped[bool] = mapped_column(Boolean, default=False)
    number_pooling: Mapped[bool] = mapped_column(Boolean, default=False)
    age_gated: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="submitted")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Transition(Base):
    """Every state change of a number, brand, campaign or toll-free verification: when, by whom, why."""

    __tablename__ = "transitions"
    __table_args__ = (Index("ix_transitions_entity", "entity", "entity_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(40))  # number | brand | campaign | toll_free_verification
    entity_id: Mapped[int] = mapped_column(Integer)
    from_state: Mapped[str | None] = mapped_column(String(40), nullable=True)
    to_state: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(60))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)  # the registry clock's time


class RegistryClock(Base):
    """The local registry's clock: real time plus the days the operator advanced it."""

    __tablename__ = "registry_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset_days: Mapped[int] = mapped_column(Integer, default=0)
