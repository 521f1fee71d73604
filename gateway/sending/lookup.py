"""The recipient's carrier and line type, from a prefix table and an optional portability file."""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from gateway.settings_routes import RECIPIENT_CARRIERS as CARRIERS


@dataclass
class NumberLookup:
    prefixes: dict[str, str] = field(default_factory=dict)
    landline_prefixes: set[str] = field(default_factory=set)
    ported: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    default: str = "unknown"

    @classmethod
    def load(cls, path: str | Path) -> "NumberLookup":
        path = Path(path)
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
        lookup = cls(prefixes={str(k): str(v) for k, v in raw.get("prefixes", {}).items()},
                     landline_prefixes=set(raw.get("landline_prefixes", {})),
                     default=str(raw.get("default", "unknown")))
        bad = {v for v in lookup.prefixes.values()} - set(CARRIERS)
        if bad or lookup.default not in CARRIERS:
            raise ValueError(f"{path}: carriers must be one of {', '.join(CARRIERS)} (got {sorted(bad)})")
        portability = raw.get("portability_file") or ""
        if portability:
            file = Path(portability) if Path(portability).is_absolute() else path.parent / portability
            with file.open(newline="") as fh:
                for row in csv.reader(fh):
                    if row and not row[0].startswith("#"):
                        lookup.ported[row[0].strip()] = (row[1].strip(), (row[2].strip() if len(row) > 2 else None))
        return lookup

    def _longest(self, number: str, table) -> str | None:  # noqa: ANN001
        for end in range(len(number), 1, -1):
            if number[:end] in table:
                return number[:end]
        return None

    def carrier(self, number: str) -> str:
        if number in self.ported:
            return self.ported[number][0]
        prefix = self._longest(number, self.prefixes)
        return self.prefixes[prefix] if prefix else self.default

    def is_landline(self, number: str) -> bool:
        if number in self.ported and self.ported[number][1]:
            return self.ported[number][1] == "landline"
        return self._longest(number, self.landline_prefixes) is not None
