"""IDs, names and timestamps in Docker's formats."""
from __future__ import annotations

import datetime as _dt
import functools
import os
import random
import re

_NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_LEFT = ["admiring", "adoring", "affectionate", "amazing", "awesome", "blissful", "bold",
         "brave", "charming", "clever", "cool", "dazzling", "determined", "eager",
         "ecstatic", "elastic", "elegant", "epic", "festive", "focused", "friendly",
         "gallant", "gifted", "goofy", "happy", "hopeful", "jolly", "keen", "kind",
         "laughing", "loving", "lucid", "modest", "nice", "nifty", "optimistic",
         "peaceful", "quirky", "relaxed", "serene", "sharp", "stoic", "sweet", "tender",
         "trusting", "upbeat", "vibrant", "wizardly", "youthful", "zealous"]
_RIGHT = ["albattani", "archimedes", "babbage", "bell", "bohr", "curie", "darwin",
          "dijkstra", "einstein", "euclid", "faraday", "fermi", "feynman", "galileo",
          "gauss", "hopper", "hypatia", "kepler", "knuth", "lamport", "lovelace",
          "maxwell", "meitner", "newton", "noether", "pascal", "ritchie", "shannon",
          "tesla", "thompson", "turing", "wozniak", "yalow"]


def new_id() -> str:
    """A 64-hex id like Docker's container and exec ids."""
    return os.urandom(32).hex()


def random_name() -> str:
    return f"{random.choice(_LEFT)}_{random.choice(_RIGHT)}"


def valid_name(name: str) -> bool:
    return bool(_NAME_RE.match(name))


def now_rfc3339() -> str:
    """Current UTC time with nanosecond-style precision, as Docker prints it."""
    return format_time(_dt.datetime.now(_dt.timezone.utc))


def format_time(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


ZERO_TIME = "0001-01-01T00:00:00Z"


def parse_time(s: str) -> _dt.datetime:
    """Parse an RFC3339(Nano) timestamp into an aware datetime."""
    s = s.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", s)
    if m:
        frac = (m.group(2) or "")[:7]
        s = m.group(1) + frac + m.group(3)
    return _dt.datetime.fromisoformat(s)


@functools.lru_cache(maxsize=4096)
def to_unix(s: str) -> float:
    """Seconds since the epoch; cached: `docker ps` reads every container's timestamps."""
    if not s or s.startswith("0001-"):
        return 0.0
    return parse_time(s).timestamp()


def to_unix_ns(s: str) -> int:
    """RFC3339Nano -> integer nanoseconds (exact: no float rounding)."""
    if not s or s.startswith("0001-"):
        return 0
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$", s.strip())
    if not m:
        raise ValueError(f"invalid timestamp {s!r}")
    tz = m.group(3)
    base = parse_time(m.group(1) + (tz or "Z"))
    frac = (m.group(2) or "").ljust(9, "0")[:9]
    return int(base.timestamp()) * 1_000_000_000 + int(frac)


def parse_unix_or_rfc3339_ns(v: str) -> int:
    """Docker's `since`/`until`: "1700000000.123456789", "1700000000" or RFC3339."""
    v = v.strip()
    if re.match(r"^\d+(\.\d+)?$", v):
        sec, _, frac = v.partition(".")
        return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9] or 0)
    return to_unix_ns(v)
