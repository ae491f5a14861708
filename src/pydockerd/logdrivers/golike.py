"""Go library behaviour the log drivers' options and formats depend on: go-units
RAMInBytes and FromHumanSize, strconv.ParseBool/Atoi,
url.Parse's scheme and host split, net.SplitHostPort, time.ParseDuration, and
time.Time.Format in the daemon's local zone (Go's time.Now() is local)."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
           "Dec")
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
                   "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_RE = re.compile(r"(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DECIMAL = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def ram_in_bytes(s: str) -> int:
    """go-units RAMInBytes: `10m`, `1.5g`, `512k`, `100` (binary multiples)."""
    m = _SIZE_RE.match(s)
    if not m:
        raise ValueError(f"invalid size: '{s}'")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


def from_human_size(s: str) -> int:
    """go-units FromHumanSize: `10m` is 10,000,000 (decimal multiples; a trailing
    `i`/`b` changes nothing). dockerd's json-file and local `max-size`."""
    m = _SIZE_RE.match(s)
    if not m:
        raise ValueError(f"invalid size: '{s}'")
    return int(float(m.group(1)) * _DECIMAL[(m.group(2) or "").lower()])


def parse_bool(s: str) -> bool:
    """strconv.ParseBool."""
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{s}": invalid syntax')


def atoi(s: str) -> int:
    """strconv.Atoi."""
    if not re.fullmatch(r"[+-]?\d+", s):
        raise ValueError(f'strconv.Atoi: parsing "{s}": invalid syntax')
    return int(s)


@dataclass(frozen=True)
class GoURL:
    scheme: str          # lower-cased, "" when none
    host: str            # host[:port] after `//`
    path: str


def parse_url(raw: str) -> GoURL:
    """url.Parse, as far as log addresses need it; ValueError with Go's wording."""
    scheme, rest = "", raw
    for i, c in enumerate(raw):
        if c.isascii() and c.isalpha():
            continue
        if c.isdigit() or c in "+-.":
            if i == 0:
                break
            continue
        if c == ":":
            if i == 0:
                raise ValueError(f'parse "{raw}": missing protocol scheme')
            scheme, rest = raw[:i].lower(), raw[i + 1:]
        break
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    if not scheme and ":" in rest.split("/", 1)[0]:
        raise ValueError(f'parse "{raw}": first path segment in URL cannot contain colon')
    if rest.startswith("//"):
        host, slash, path = rest[2:].partition("/")
        return GoURL(scheme, host, slash + path)
    return GoURL(scheme, "", rest)


def split_host_port(hostport: str) -> tuple[str, str]:
    """net.SplitHostPort; ValueError with Go's text (`address x: missing port in address`)."""
    def err(why: str) -> ValueError:
        return ValueError(f"address {hostport}: {why}")
    i = hostport.rfind(":")
    if i < 0:
        raise err("missing port in address")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise err("missing ']' in address")
        if end + 1 == len(hostport):
            raise err("missing port in address")
        if end + 1 != i:
            raise err("too many colons in address" if hostport[end + 1] == ":"
                      else "missing port in address")
        host = hostport[1:end]
    else:
        host = hostport[:i]
        if ":" in host:
            raise err("too many colons in address")
    return host, hostport[i + 1:]


def join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_duration(s: str) -> int:
    """time.ParseDuration -> nanoseconds; ValueError with Go's text."""
    orig, neg = s, False
    if s[:1] in "+-" and s:
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f'time: invalid duration "{orig}"')
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_RE.match(s, pos)
        if not m or m.group(1) in ("", "."):
            unit = re.match(r"[\d.]*([^\d.]*)", s[pos:])
            if m is None and unit and unit.group(1) and s[pos:pos + 1].isdigit():
                raise ValueError(f'time: unknown unit "{unit.group(1)}" in duration "{orig}"')
            if m is None and s[pos:].replace(".", "").isdigit():
                raise ValueError(f'time: missing unit in duration "{orig}"')
            raise ValueError(f'time: invalid duration "{orig}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return -int(total) if neg else int(total)


def _zone(offset: int) -> str:
    if offset == 0:
        return "Z"
    sign = "+" if offset > 0 else "-"
    hh, mm = divmod(abs(offset) // 60, 60)
    return f"{sign}{hh:02d}:{mm:02d}"


def local_stamp(ns: int) -> str:
    """time.Stamp (`Jan _2 15:04:05`) in the local zone."""
    t = time.localtime(ns // 1_000_000_000)
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def local_rfc3339(ns: int, frac_digits: int = 0, trim: bool = False,
                  utc: bool = False) -> str:
    """time.RFC3339 (frac_digits 0), `.000000` (6, rfc5424micro) or RFC3339Nano
    (9 with `trim`: trailing zeros dropped) in the local zone (or UTC)."""
    sec, nsec = divmod(ns, 1_000_000_000)
    t = time.gmtime(sec) if utc else time.localtime(sec)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", t)
    frac = f"{nsec:09d}"[:frac_digits]
    if trim:
        frac = frac.rstrip("0")
    return base + ("." + frac if frac else "") + _zone(t.tm_gmtoff)
