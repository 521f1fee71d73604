"""The HTTP voice carrier: places calls that play an audio URL; the carrier reports progress to a callback.

API (docs/voice-carrier-api.md)::

    POST {base}/v1/calls   Authorization: Bearer <api key>
         {"to", "from", "audio_url", "status_callback", "client_ref"}  ->  201 {"call_id"}
    then POSTs to status_callback, in order:
         {"call_id", "client_ref", "status": initiated|ringing|answered|completed|busy|no_answer|failed,
          "duration_s", "error"}
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from carriers._base import CarrierRejected, CarrierRetryable

CALL_STATUSES = ("initiated", "ringing", "answered", "completed", "busy", "no_answer", "failed")
FINAL_CALL_STATUSES = {"completed", "busy", "no_answer", "failed"}


@dataclass(frozen=True, slots=True)
class CallRequest:
    to: str
    from_: str
    audio_url: str
    status_callback_url: str
    call_id: str  # our id, echoed back as client_ref


class HttpVoiceCarrier:
    def __init__(self, name: str, base_url: str, api_key: str, *, session: aiohttp.ClientSession | None = None,
                 timeout_s: float = 10.0):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._session = session
        self._own = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def __repr__(self) -> str:
        return f"HttpVoiceCarrier({self.name!r}, {self.base_url!r})"

    async def place_call(self, req: CallRequest) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = {"to": req.to, "from": req.from_, "audio_url": req.audio_url,
                "status_callback": req.status_callback_url, "client_ref": req.call_id}
        try:
            async with self._session.post(f"{self.base_url}/v1/calls", json=body,
                                          headers={"Authorization": f"Bearer {self._api_key}"}) as resp:
                text = await resp.text()
                if resp.status == 429 or resp.status >= 500:
                    raise CarrierRetryable(f"{self.name} answered {resp.status}", code="carrier_unavailable")
                if resp.status >= 400:
                    raise CarrierRejected(f"{self.name} refused the call ({resp.status}): {text[:200]}",
                                          code="call_rejected")
                return str((await resp.json(content_type=None))["call_id"])
        except aiohttp.ClientError as exc:
            raise CarrierRetryable(f"{self.name} is unreachable: {exc}", code="carrier_unreachable") from exc
        except (KeyError, ValueError) as exc:
            raise CarrierRejected(f"{self.name} answered without a call_id", code="bad_response") from exc

    async def close(self) -> None:
        if self._own and self._session is not None:
            await self._session.close()
