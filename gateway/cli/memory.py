"""What the gateway process holds in memory, for finding what grows: ``kill -USR1 <pid>`` makes a running
``gatewayctl run`` log one line ``memory: {...}`` (JSON) with its resident memory, the C heap as glibc's malloc sees
it (in use and free: a large free share is fragmentation, not objects), SQLite's own allocations, the objects the
garbage collector tracks by type (those made since start-up: start-up's are frozen and not counted), the asyncio
tasks by coroutine, and the fill of the caches that grow with traffic. With ``PYTHONTRACEMALLOC=<frames>`` in the
environment each signal also writes a tracemalloc snapshot (compare two with
``tracemalloc.Snapshot.load(a).compare_to(tracemalloc.Snapshot.load(b), "traceback")``).

Costs a pause of a fraction of a second per signal (the walk over the tracked objects), nothing otherwise.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import ctypes.util
import functools
import gc
import itertools
import json
import logging
import signal
import sys
import tracemalloc
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("gateway.memory")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


@functools.cache
def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        return libc
    except (OSError, AttributeError):  # not glibc, or a glibc before 2.33
        return None


@functools.cache
def _libsqlite() -> Any:
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        return lib
    except (OSError, AttributeError):  # SQLite linked into the interpreter, or none found
        return None


def _mb(n: float) -> float:
    return round(n / 2**20, 1)


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def malloc_info() -> dict[str, float] | None:
    """glibc's heap over all its arenas, in MB: taken from the system (heap, and mmap for large blocks), in use,
    and free inside the heap (held by the process, shown in its RSS once touched, reusable only by malloc)."""
    libc = _libc()
    if libc is None:
        return None
    m = libc.mallinfo2()
    return {"heap_mb": _mb(m.arena), "mmap_mb": _mb(m.hblkhd), "in_use_mb": _mb(m.uordblks + m.hblkhd),
            "free_in_heap_mb": _mb(m.fordblks)}


_CONTAINERS = (dict, list, set, frozenset, collections.deque, collections.OrderedDict)


def _label(o: Any) -> str:
    """A container's type and a sample of what it holds (a key's type, never its value: it may be a secret)."""
    sample = next(iter(o), None) if not isinstance(o, collections.deque) or o else None
    value = o.get(sample) if isinstance(o, dict) and sample is not None else None
    inner = type(sample).__name__ + (f"->{type(value).__name__}" if isinstance(o, dict) else "")
    return f"{type(o).__name__}[{inner}]"


def big_containers(*roots: list[tuple[str, Any]], minimum: int = 1000,
                   visit: int = 500_000) -> list[tuple[str, str, int]]:
    """Containers of at least ``minimum`` entries reachable from ``roots`` (name, object), found breadth-first
    through what each object refers to (from the first list of roots, then from the next that reach further),
    at most ``visit`` objects: (a path to it, what it is, entries), the largest first. A path names dict keys
    (cut short) and types: "gateway.api.app>Application._state...>Dispatcher._receipts"."""
    seen: set[int] = set()
    found: list[tuple[str, str, int]] = []
    for phase in roots:
        _walk(phase, seen, found, minimum, visit)
    found.sort(key=lambda f: -f[2])
    return found[:25]


def _walk(roots: list[tuple[str, Any]], seen: set[int], found: list[tuple[str, str, int]], minimum: int,
          visit: int) -> None:
    # (path, object, whether it is a namespace: a module's or an instance's attributes, whose keys are names; the
    # keys of other dicts are data, never part of a path)
    queue: collections.deque[tuple[str, Any, bool]] = collections.deque((path, o, True) for path, o in roots)
    while queue and len(seen) < visit:
        path, o, namespace = queue.popleft()
        if id(o) in seen or isinstance(o, (str, bytes, int, float, type(None), type)):
            continue
        seen.add(id(o))
        if isinstance(o, functools._lru_cache_wrapper):
            if o.cache_info().currsize >= minimum:
                found.append((path, "lru_cache", o.cache_info().currsize))
            continue
        if isinstance(o, _CONTAINERS) and len(o) >= minimum:
            found.append((path, _label(o), len(o)))
            continue  # its entries are what it holds, not where more containers hide
        if isinstance(o, dict):
            for k, v in itertools.islice(o.items(), 200):
                named = namespace and isinstance(k, str) and k.isidentifier()
                queue.append((f"{path}.{k:.40}" if named else f"{path}[{type(k).__name__}]", v, False))
        else:
            attrs = _attributes(o)
            named = set()
            if attrs is not None:
                queue.append((path, attrs, True))
                named = {id(v) for v in attrs.values()}
            for r in gc.get_referents(o)[:200]:
                if r is not attrs and id(r) not in named:
                    queue.append((path if isinstance(r, dict) else f"{path}>{type(r).__qualname__}", r, False))


def _attributes(o: Any) -> dict | None:
    """An object's own attributes, without running any __getattr__ of its class."""
    try:
        attrs = object.__getattribute__(o, "__dict__")
    except Exception:  # noqa: BLE001 - none, or a class that refuses
        return None
    return attrs if isinstance(attrs, dict) else None


def report(caches: dict[str, Callable[[], int]] | None = None, roots: dict[str, Any] | None = None,
           top: int = 15) -> dict[str, Any]:
    """The figures the module's docstring lists; ``caches``: name -> its current number of entries; ``roots``:
    where to look for large containers first (the app), then the modules, then the objects the collector
    tracks."""
    objects = gc.get_objects()
    by_type = collections.Counter(type(o).__qualname__ for o in objects)
    tasks = collections.Counter(getattr(t.get_coro(), "__qualname__", "?") for t in asyncio.all_tasks())
    sqlite = _libsqlite()
    out: dict[str, Any] = {
        "rss_mb": _mb((_status_kb("VmRSS") or 0) * 1024), "rss_max_mb": _mb((_status_kb("VmHWM") or 0) * 1024),
        "malloc": malloc_info(),
        "python_blocks": sys.getallocatedblocks(),
        "sqlite_mb": _mb(sqlite.sqlite3_memory_used()) if sqlite is not None else None,
        "gc_objects": len(objects), "gc_top_types": dict(by_type.most_common(top)),
        "tasks": sum(tasks.values()), "tasks_top": dict(tasks.most_common(5)),
        "caches": {name: size() for name, size in (caches or {}).items()},
    }
    out["big_containers"] = big_containers(list((roots or {}).items()),
                                           [(name, vars(m)) for name, m in list(sys.modules.items()) if m is not None],
                                           [(type(o).__qualname__, o) for o in objects])
    if tracemalloc.is_tracing():
        out["tracemalloc_mb"] = _mb(tracemalloc.get_traced_memory()[0])
    return out


def install(folder: Path, caches: dict[str, Callable[[], int]] | None = None,
            roots: dict[str, Any] | None = None) -> None:
    """On SIGUSR1: log the report; with tracemalloc tracing, also write folder/tracemalloc-<n>.snap."""
    count = itertools.count(1)

    def on_signal() -> None:
        figures = report(caches, roots)
        if tracemalloc.is_tracing():
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"tracemalloc-{next(count):03d}.snap"
            tracemalloc.take_snapshot().dump(str(path))
            figures["tracemalloc_snapshot"] = str(path)
        log.info("memory: %s", json.dumps(figures))

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, on_signal)
