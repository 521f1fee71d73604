"""Voice messages: a durable worker renders each script and places the call; carrier callbacks move it on.

queued -> (rendered, call placed) initiated -> ringing -> answered -> completed | busy | no_answer | failed.
Each step is a VOICE_* event, signed like SMS events, to the message's status_callback and the account's event
webhook. A carrier that is unavailable is tried again (``retry_s``, up to ``max_attempts``); one that refuses the
call fails it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import secrets
import time
from typing import Any, Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from carriers import CarrierRejected, CarrierRetryable
from carriers.voice_http import FINAL_CALL_STATUSES, CallRequest, HttpVoiceCarrier
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store.models import VoiceEvent, VoiceMessage
from gateway.webhooks.catalog import wanted
from gateway.webhooks.outbox import enqueue, new_delivery
from registry.db import iso, utcnow
from registry.models import Account
from voice import markup as vm
from voice.render import Renderer
from voice.signing import sign_url

log = logging.getLogger(__name__)

STEP_ORDER = {"queued": 0, "initiated": 1, "ringing": 2, "answered": 3, "completed": 4, "busy": 4,
              "no_answer": 4, "failed": 4}



def voice_view(v: VoiceMessage, events: list[VoiceEvent] | None = None) -> dict[str, Any]:
    view = {"id": v.public_id, "status": v.status, "from": v.source, "to": v.destination, "voice": v.voice,
            "outcome": v.status if v.status in FINAL_CALL_STATUSES else None, "audio_ms": v.audio_ms,
            "duration_s": v.call_seconds, "error_code": v.error_code, "attempts": v.attempts,
            "created_at": iso(v.created_at), "done_at": iso(v.done_at)}
    if events is not None:
        view["events"] = [{"type": e.type, "status": e.status, "error_code": e.error_code, "at": iso(e.created_at)}
                          for e in events]
    return view


class VoiceCalls:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, renderer: Renderer,
                 carrier: HttpVoiceCarrier, secret: str, *, on_webhooks: Callable[[], None] = lambda: None,
                 metrics: Metrics | None = None):
        self._sm = sessionmaker
        self._metrics = metrics or Metrics()
        self.settings = settings
        self.renderer = renderer
        self.carrier = carrier
        self._secret = secret
        self._on_webhooks = on_webhooks
        self._wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()

    def token(self, public_id: str) -> str:
        """The secret part of a call's status callback URL."""
        mac = hmac.new(self._secret.encode(), public_id.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{public_id}.{mac}"

    def check_token(self, token: str) -> str | None:
        public_id, _, _ = token.partition(".")
        return public_id if hmac.compare_digest(self.token(public_id), token) else None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="voice-calls")

    async def stop(self) -> None:
        self._stop.set()
        self._wakeup.set()
        if self._task:
            await asyncio.wait([self._task], timeout=10)
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=10)

    def notify(self) -> None:
        self._wakeup.set()

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                async with self._sm() as session, session.begin():
                    now = utcnow()
                    ids = (await session.scalars(
                        update(VoiceMessage).where(VoiceMessage.status == "queued", VoiceMessage.updated_at <= now)
                        .values(status="placing", attempts=VoiceMessage.attempts + 1, updated_at=now)
                        .returning(VoiceMessage.id).execution_options(synchronize_session=False))).all()
                for vid in ids:
                    task = asyncio.create_task(self._place(vid))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
            except Exception as exc:  # noqa: BLE001 - an alert (the traceback in the first)
                self._metrics.alerts.failed("claiming voice messages", exc)
            self._wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), 1.0)

    async def _place(self, vid: int) -> None:
        async with self._sm() as session:
            v = await session.get(VoiceMessage, vid)
        try:
            chunks = vm.parse(v.script, markup=v.markup)
            audio = await self.renderer.render_chunks(chunks, v.voice)
            (self._metrics.voice_cache_hits if audio.cached else self._metrics.voice_renders).inc()
            expires = int(time.time()) + self.settings.voice.audio_url_ttl_s
            base = self.settings.server.base_url
            url = sign_url(base, audio.key, self._secret, expires)
            callback = f"{base}/callbacks/voice/{self.token(v.public_id)}"
            call_id = await self.carrier.place_call(CallRequest(v.destination, v.source, url, callback, v.public_id))
            async with self._sm() as session, session.begin():
                await session.execute(update(VoiceMessage).where(VoiceMessage.id == vid).values(
                    audio_key=audio.key, audio_ms=audio.duration_ms, carrier_call_id=call_id, updated_at=utcnow()))
                # the carrier's first callback may already have moved it on
                await session.execute(update(VoiceMessage).where(VoiceMessage.id == vid,
                                                                 VoiceMessage.status == "placing")
                                      .values(status="placed"))
        except CarrierRetryable as exc:
            again = v.attempts < self.settings.voice.max_attempts
            log.warning("placing voice call %s failed (%s); %s", v.public_id, exc,
                        "will retry" if again else "giving up",
                        extra={"account_id": v.account_id, "message_id": v.public_id})
            if again:
                async with self._sm() as session, session.begin():
                    await session.execute(update(VoiceMessage).where(VoiceMessage.id == vid).values(
                        status="queued", error_code=exc.code,
                        updated_at=utcnow() + dt.timedelta(seconds=self.settings.voice.retry_s)))
            else:
                await self.advance(v.public_id, "failed", error=exc.code)
        except (CarrierRejected, vm.VoiceInputError) as exc:
            await self.advance(v.public_id, "failed", error=getattr(exc, "code", "rejected"))
        except Exception:
            log.exception("placing voice call %s failed", v.public_id)
            await self.advance(v.public_id, "failed", error="internal_error")

    async def advance(self, public_id: str, status: str, *, duration_s: float | None = None,
                      error: str | None = None) -> bool:
        """Move a call on to ``status`` (never backwards; a final state once). Returns whether it moved."""
        now = utcnow()
        async with self._sm() as session, session.begin():
            v = await session.scalar(select(VoiceMessage).where(VoiceMessage.public_id == public_id))
            if v is None:
                return False
            current = v.status if v.status in STEP_ORDER else "queued"
            if current in FINAL_CALL_STATUSES or STEP_ORDER[status] <= STEP_ORDER[current] and current != "queued":
                return False
            v.status, v.updated_at = status, now
            if error:
                v.error_code = error
            if status in FINAL_CALL_STATUSES:
                self._metrics.voice_calls.labels(status).inc()
                v.done_at = now
                if duration_s is not None:
                    v.call_seconds = duration_s
            event_type = "VOICE_" + status.upper()
            session.add(VoiceEvent(voice_message_id=v.id, type=event_type, status=status, error_code=error,
                                   created_at=now))
            account = await session.get(Account, v.account_id)
            payload = {"event_type": event_type, "message_id": v.public_id, "status": status, "error_code": error,
                       "from": v.source, "to": v.destination, "duration_s": v.call_seconds,
                       "timestamp": iso(now), "created_at": iso(v.created_at)}
            urls = {url for url, chosen in ((v.status_callback, None), (account.event_webhook_url,
                                                                        account.webhook_events))
                    if url and wanted(chosen, event_type)}
            await enqueue(session, [new_delivery(v.account_id, url, "event", event_type, payload, now) for url in urls])
        if urls:
            self._on_webhooks()
        return True


def new_voice_id() -> str:
    return "vm_" + secrets.token_hex(12)
