"""Script -> speech -> telephony audio, in worker processes, cached by what determines the audio.

Speech comes from pyttsx3 on espeak-ng, one engine per worker process (engines are not thread-safe, and the
synthesis must not block the event loop); pydub joins the chunks and pauses and converts the result to 8 kHz
mono G.711 mu-law WAV (through ffmpeg). The cache key is a SHA-256 of the rendered chunks, the voice and the
pipeline version: the same script in the same voice is never synthesized twice, and concurrent identical
requests share one synthesis.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from voice.audio import inspect_wav
from voice.markup import Chunk, VoiceInputError, parse

log = logging.getLogger(__name__)

PIPELINE_VERSION = "2"  # 2: synchronous espeak (audio of 1 may hold chunks at the wrong rate or cut short)
DEFAULT_VOICE = "en-us"

_engine = None  # one per worker process


def _fix_espeak_driver() -> None:
    """Two fixes to pyttsx3 2.99's espeak driver, before its first engine.

    Synchronous espeak. The driver initializes espeak in AUDIO_OUTPUT_RETRIEVAL mode, where espeak_Synth and a
    rate change only queue a command for espeak's own thread and runAndWait returns some 10 ms later: on a cold
    start or a busy machine the WAV file was then missing, empty or half-written (an EOFError from ``wave``,
    which click reports as "Aborted!"), a chunk came out at the previous chunk's rate (runAndWait cancels what
    espeak is "playing", which resets the rate) or cut short, and the driver's "Audio saved to ..." line landed
    on the parent's stdout. In AUDIO_OUTPUT_SYNCHRONOUS mode espeak_Synth speaks in the calling thread and
    returns when done; that mode sends no EVENT_MSG_TERMINATED, the driver's cue to write the file, so the
    callback that ends the speech (a NULL buffer) is handed on as one.

    The driver writes the file on EVENT_MSG_TERMINATED before appending the samples that came with that same
    callback: the end of the speech is lost, and all of it when espeak delivers everything at once (a silent
    file). Append the samples first; the original then writes a complete file."""
    import ctypes

    from pyttsx3.drivers import _espeak, espeak as driver

    cls = driver.EspeakDriver
    if getattr(cls, "_gateway_fixed", False):
        return
    if not cls._moduleInitialized:  # espeak is initialized once per process
        if _espeak.Initialize(_espeak.AUDIO_OUTPUT_SYNCHRONOUS, 1000) == -1:
            raise RuntimeError("could not initialize espeak-ng")
        cls._defaultVoice, cls._moduleInitialized = "gmw/en", True  # as the driver's own initialization
    original = cls._onSynth

    def on_synth(self, wav, numsamples, events):  # noqa: ANN001, ANN202
        if numsamples > 0 and self._speaking:
            self._data_buffer += ctypes.string_at(wav, numsamples * ctypes.sizeof(ctypes.c_short))
        if not wav:  # the end of the speech
            events = (_espeak.EVENT * 2)()  # the second, all zero, is EVENT_LIST_TERMINATED
            events[0].type = _espeak.EVENT_MSG_TERMINATED
        return original(self, wav, 0, events)

    cls._onSynth = on_synth
    cls._gateway_fixed = True


def _engine_in_worker():  # noqa: ANN202
    global _engine
    if _engine is None:
        import pyttsx3

        _fix_espeak_driver()
        _engine = pyttsx3.init("espeak")
    return _engine


def _voices_in_worker() -> dict[str, str]:
    out = {}
    for v in _engine_in_worker().getProperty("voices"):
        for lang in v.languages or []:
            tag = (lang.decode() if isinstance(lang, bytes) else str(lang)).lower().lstrip("\x05")
            out.setdefault(tag, v.id)
    return out


def _frames(path: str) -> int:
    """The WAV file's frames; 0 when it is missing or unreadable (an EOFError would reach click as "Aborted!")."""
    import wave

    try:
        with wave.open(path, "rb") as w:
            return w.getnframes()
    except (OSError, EOFError, wave.Error):
        return 0


def _synthesize(chunks: list[tuple[str, int, int]], voice_id: str, out_path: str) -> int:
    """In a worker process: speak the chunks, join them with their pauses, write mu-law WAV; its duration."""
    from pydub import AudioSegment

    engine = _engine_in_worker()
    engine.setProperty("voice", voice_id)
    with tempfile.TemporaryDirectory(prefix="voice-") as tmp:
        parts: list[tuple[str | None, int]] = []
        for i, (text, rate, pause_ms) in enumerate(chunks):
            path = None
            if text.strip():
                path = os.path.join(tmp, f"{i}.wav")
                engine.setProperty("rate", rate)
                engine.save_to_file(text, path)
                with contextlib.redirect_stdout(io.StringIO()):  # pyttsx3 prints "Audio saved to ..."
                    engine.runAndWait()  # espeak is synchronous: the file is complete
                if _frames(path) == 0:
                    raise RuntimeError(f"speech synthesis produced no audio for {text[:40]!r}")
            parts.append((path, pause_ms))
        audio = AudioSegment.silent(duration=150, frame_rate=8000)
        for path, pause_ms in parts:
            if pause_ms:
                audio += AudioSegment.silent(duration=pause_ms, frame_rate=8000)
            if path:
                audio += AudioSegment.from_wav(path).set_frame_rate(8000).set_channels(1)
        audio += AudioSegment.silent(duration=150, frame_rate=8000)
        tmp_out = out_path + ".tmp"
        audio.set_frame_rate(8000).set_channels(1).export(tmp_out, format="wav", codec="pcm_mulaw",
                                                          parameters=["-ar", "8000", "-ac", "1"])
        os.replace(tmp_out, out_path)
    return len(audio)


@dataclass(frozen=True, slots=True)
class RenderedAudio:
    key: str
    path: Path
    duration_ms: int
    bytes_len: int
    cached: bool


class Renderer:
    def __init__(self, cache_dir: str | Path, *, workers: int = 2):
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers)
        self._inflight: dict[str, asyncio.Future] = {}
        self._voices: dict[str, str] | None = None
        self.syntheses = 0  # how many renders actually ran (the rest were cache hits)

    async def voices(self) -> dict[str, str]:
        """Language tag (en-us) -> synthesizer voice id."""
        if self._voices is None:
            self._voices = await asyncio.get_running_loop().run_in_executor(self._pool, _voices_in_worker)
        return self._voices

    async def resolve_voice(self, voice: str | None, language: str | None) -> str:
        voices = await self.voices()
        tag = (voice or "").lower() or None
        lang = (language or "").lower() or None
        if lang is not None and not any(t == lang or t.startswith(lang + "-") for t in voices):
            raise VoiceInputError("unknown_language", f"No voice speaks {language!r}.")
        if tag is None:
            tag = DEFAULT_VOICE if lang in (None, "en") else next(t for t in sorted(voices)
                                                                  if t == lang or t.startswith(lang + "-"))
        if tag not in voices:
            raise VoiceInputError("unknown_voice", f"Unknown voice {voice!r}; for example en-us, en-gb, fr-fr.")
        if lang is not None and not (tag == lang or tag.startswith(lang + "-")):
            raise VoiceInputError("unknown_voice", f"The voice {voice!r} does not speak {language!r}.")
        return tag

    @staticmethod
    def key(chunks: list[Chunk], voice: str) -> str:
        blob = json.dumps([PIPELINE_VERSION, voice, [[c.text, c.rate_wpm, c.pause_ms] for c in chunks]])
        return hashlib.sha256(blob.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.wav"

    async def render(self, script: str, *, voice: str | None = None, language: str | None = None,
                     variables: Mapping[str, object] | None = None, markup: bool | None = None) -> RenderedAudio:
        chunks = parse(script, variables, markup=markup)
        tag = await self.resolve_voice(voice, language)
        return await self.render_chunks(chunks, tag)

    async def render_chunks(self, chunks: list[Chunk], voice: str) -> RenderedAudio:
        key = self.key(chunks, voice)
        path = self.path(key)
        if path.exists():
            return self._result(key, path, cached=True)
        if key in self._inflight:
            await asyncio.shield(self._inflight[key])
            return self._result(key, path, cached=True)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            voice_id = (await self.voices())[voice]
            await asyncio.get_running_loop().run_in_executor(
                self._pool, _synthesize, [(c.text, c.rate_wpm, c.pause_ms) for c in chunks], voice_id, str(path))
            self.syntheses += 1
            fut.set_result(None)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved here; waiters get it through shield
            raise
        finally:
            self._inflight.pop(key, None)
        return self._result(key, path, cached=False)

    @staticmethod
    def _result(key: str, path: Path, *, cached: bool) -> RenderedAudio:
        info = inspect_wav(path)
        return RenderedAudio(key, path, info.duration_ms, path.stat().st_size, cached)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
