"""Accounts, their API keys, the numbers they lease, and 10DLC brands, campaigns and what the registry said."""

from __future__ import annotations

import datetime as dt
import enum
import functools

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint, true
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
    # 10DLC: the campaign the number belongs to (at most one; set while it is being associated, too)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"), nullable=True,
                                                    index=True)
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
    """A 10DLC brand: the company behind the messages, as the gateway registered it with the registry (as a CSP).

    ``status``: created (the registration waits to reach the registry), submitted (the registry runs the identity
    check), complete (VERIFIED, VETTED_VERIFIED or SELF_DECLARED), requires_updates (UNVERIFIED: see the registry's
    feedback), deleted. ``identity_status`` and ``trust_score`` are the registry's identityStatus and brandScore."""

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
    street: Mapped[str | None] = mapped_column(String(255), nullable=True)
    city: Mapped[str | None] = mapped_column(String(100), nullable=True)
    state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    postal_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    relationship: Mapped[str] = mapped_column(String(20), default="BASIC_ACCOUNT", server_default="BASIC_ACCOUNT")
    status: Mapped[str] = mapped_column(String(20), default="created")  # registration status
    identity_status: Mapped[str] = mapped_column(String(20), default="UNVERIFIED")
    trust_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    vetting_status: Mapped[str | None] = mapped_column(String(20), nullable=True)  # PENDING | ACTIVE | FAILED
    vetting_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the registry's brandId (B + 6), and ours in the registration (referenceId: a retry answers the same brand)
    registry_id: Mapped[str | None] = mapped_column(String(10), nullable=True, unique=True, index=True)
    reference_id: Mapped[str | None] = mapped_column(String(40), nullable=True, unique=True, index=True)
    # the registry's (createDate, sequence) of the last change applied to its identity and to its vetting
    # (registry.events.mark): an older event never overwrites a newer state
    identity_mark: Mapped[str | None] = mapped_column(String(48), nullable=True)
    vetting_mark: Mapped[str | None] = mapped_column(String(48), nullable=True)
    registry_updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # registry clock
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Campaign(Base):
    """A 10DLC campaign: one use case of a brand's messaging, created at the registry and shared with the DCA.

    ``status`` is derived (registry.states.campaign_status) from the registry's status (ACTIVE, EXPIRED,
    DEACTIVATED), the sharing status (PENDING, ACCEPTED, DECLINED) and each carrier's operation status
    (CampaignOperation)."""

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
    auto_renewal: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    status: Mapped[str] = mapped_column(String(20), default="created")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    registry_id: Mapped[str | None] = mapped_column(String(10), nullable=True, unique=True, index=True)  # C + 6
    reference_id: Mapped[str | None] = mapped_column(String(40), nullable=True, unique=True, index=True)
    registry_status: Mapped[str | None] = mapped_column(String(20), nullable=True)  # ACTIVE | EXPIRED | DEACTIVATED
    sharing_status: Mapped[str | None] = mapped_column(String(20), nullable=True)  # PENDING | ACCEPTED | DECLINED
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # registry clock
    status_mark: Mapped[str | None] = mapped_column(String(48), nullable=True)
    sharing_mark: Mapped[str | None] = mapped_column(String(48), nullable=True)
    registry_updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CampaignOperation(Base):
    """One carrier's (MNO's) operation status of a campaign: REVIEW, APPROVED, REJECTED or SUSPENDED."""

    __tablename__ = "campaign_operations"
    __table_args__ = (UniqueConstraint("campaign_id", "mno", name="uq_campaign_operations_mno"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    mno: Mapped[str] = mapped_column(String(12))  # ATT | TMOBILE | VERIZON | USCELLULAR
    status: Mapped[str] = mapped_column(String(12))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    mark: Mapped[str | None] = mapped_column(String(48), nullable=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # registry clock


class NumberOrder(Base):
    """A request to the DCA to associate numbers with a campaign, or to take one out of it.

    ``status``: pending (waiting to reach the DCA), placed (the DCA has it: ``registry_id``), completed, failed."""

    __tablename__ = "number_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # ASSOCIATE | DISASSOCIATE
    status: Mapped[str] = mapped_column(String(12), default="pending")
    registry_id: Mapped[str | None] = mapped_column(String(10), nullable=True, unique=True)  # the DCA's O...
    reference_id: Mapped[str] = mapped_column(String(40), unique=True)
    mark: Mapped[str | None] = mapped_column(String(48), nullable=True)
    registry_updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class NumberOrderItem(Base):
    """A number of an order: associating -> associated | failed; disassociating -> disassociated | failed."""

    __tablename__ = "number_order_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("number_orders.id", ondelete="CASCADE"), index=True)
    number_id: Mapped[int] = mapped_column(ForeignKey("numbers.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class RegistryRequest(Base):
    """A call the registry has still to take: stored before it is made, retried by the reconciliation after a 5xx
    or a timeout, until done (or failed: the registry refused it)."""

    __tablename__ = "registry_requests"
    __table_args__ = (Index("ix_registry_requests_due", "status", "next_try_at"),
                      Index("ix_registry_requests_entity", "entity", "entity_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(20))  # brand | campaign | order
    entity_id: Mapped[int] = mapped_column(Integer)
    operation: Mapped[str] = mapped_column(String(30))  # register, vet, share, associate, ...
    body: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON arguments
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RegistryEvent(Base):
    """An event the registry posted, stored (in the transaction that applies it) before it is acknowledged; its
    eventId is unique, so a redelivery changes nothing. ``outcome``: applied, ignored (older than the state held,
    or of no interest: ``reason`` says), or unmatched (about an id not known yet: applied once it is)."""

    __tablename__ = "registry_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(80), unique=True)
    event_type: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)  # brandId, campaignId, orderId
    registry_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # createDate
    sequence: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    payload: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Transition(Base):
    """Every state change of a number, brand, campaign or toll-free verification, and every registry call made
    for it: when, by whom, why (``detail``: the call and its answer, or the event, as JSON)."""

    __tablename__ = "transitions"
    __table_args__ = (Index("ix_transitions_entity", "entity", "entity_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(40))  # number | brand | campaign | order | toll_free_verification
    entity_id: Mapped[int] = mapped_column(Integer)
    from_state: Mapped[str | None] = mapped_column(String(40), nullable=True)
    to_state: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(60))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
