"""A voice carrier simulator: takes calls over the HTTP voice API, fetches and checks the audio (8 kHz mono
mu-law WAV), and reports the call's progress to the status callback by configurable rules.

Rules map a destination to an outcome (completed by default; busy, no_answer, failed). A call whose audio
cannot be fetched or is not telephony audio fails with error ``invalid_audio``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import struct
import time
from typing import Any

import aiohttp
from aiohttp import web


def telephony_duration(data: bytes) -> float | None:
    """Seconds of audio if ``data`` is 8 kHz mono G.711 mu-law WAV, else None."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        chunk, length = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"fmt " and length >= 16:
            fmt = struct.unpack_from("<HHIIHH", data, pos + 8)
        elif chunk == b"data":
            if fmt is None or (fmt[0], fmt[1], fmt[2], fmt[5]) != (7, 1, 8000, 8):
                return None
            return min(length, len(data) - pos - 8) / 8000
        pos += 8 + length + (length & 1)
    return None


class VoiceSimulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str = "voice-secret",
                 rules: dict[str, str] | None = None, step_delay: float = 0.02):
        self.host, self.port = host, port
        self.api_key = api_key
        self.rules = dict(rules or {})  # destination -> outcome
        self.step_delay = step_delay
        self.calls: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task] = set()
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/calls", self._place)
        app.router.add_get("/v1/calls", self._list)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._http:
            await self._http.close()
        if self._runner:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _place(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"code": "unauthorized", "message": "Bad API key."}}, status=401)
        try:
            body = json.loads(await request.read())
            call = {k: str(body[k]) for k in ("to", "from", "audio_url", "status_callback", "client_ref")}
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": {"code": "invalid_request", "message": "to, from, audio_url, "
                                                "status_callback and client_ref are required."}}, status=400)
        call.update(call_id=f"call-{next(self._ids)}", created_at=time.time(), statuses=[])
        self.calls.append(call)
        task = asyncio.create_task(self._progress(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({"call_id": call["call_id"]}, status=201)

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response([{k: v for k, v in c.items()} for c in self.calls])

    async def _report(self, call: dict, status: str, duration_s: float = 0.0, error: str | None = None) -> None:
        call["statuses"].append(status)
        payload = {"call_id": call["call_id"], "client_ref": call["client_ref"], "status": status,
                   "duration_s": round(duration_s, 2), "error": error}
        assert self._http is not None
        for attempt in range(5):
            try:
                async with self._http.post(call["status_callback"], json=payload) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2 * (attempt + 1))

    async def _progress(self, call: dict) -> None:
        outcome = self.rules.get(call["to"], "completed")
        duration = None
        try:
            assert self._http is not None
            async with self._http.get(call["audio_url"]) as resp:
                if resp.status == 200:
                    duration = telephony_duration(await resp.read())
        except aiohttp.ClientError:
            duration = None
        call["audio_seconds"] = duration
        await self._report(call, "initiated")
        await asyncio.sleep(self.step_delay)
        if duration is None:
            await self._report(call, "failed", error="invalid_audio")
            return
        if outcome == "failed":
            await self._report(call, "failed", error="network_error")
            return
        await self._report(call, "ringing")
        await asyncio.sleep(self.step_delay)
        if outcome in ("busy", "no_answer"):
            await self._report(call, outcome)
            return
        await self._report(call, "answered")
        await asyncio.sleep(self.step_delay)
        await self._report(call, "completed", duration_s=duration)
