"""A minimal DNS message parser and encoder (RFC 1035): enough for the embedded resolver.

Only what a stub resolver sends is parsed (the header and the first question);
answers are built for A and AAAA records, PTR, empty NOERROR (e.g. AAAA for a
known name without IPv6), NXDOMAIN and SERVFAIL. Pure logic.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

TYPE_A, TYPE_PTR, TYPE_AAAA = 1, 12, 28
CLASS_IN = 1
RCODE_OK, RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_NOTIMP = 0, 1, 2, 3, 4
_HEADER = struct.Struct("!HHHHHH")
TTL = 600


class DNSFormatError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Question:
    name: str              # lower case, no trailing dot
    qtype: int
    qclass: int


@dataclass(frozen=True, slots=True)
class Query:
    id: int
    flags: int
    question: Question
    raw_question: bytes    # the question section as sent (echoed in the answer)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def recursion_desired(self) -> bool:
        return bool(self.flags & 0x0100)


def _read_name(msg: bytes, pos: int) -> tuple[str, int]:
    labels: list[str] = []
    end = -1
    for _ in range(128):                    # bound pointer chains
        if pos >= len(msg):
            raise DNSFormatError("truncated name")
        n = msg[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise DNSFormatError("truncated pointer")
            if end < 0:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            continue
        if n & 0xC0:
            raise DNSFormatError("bad label type")
        label = msg[pos + 1:pos + 1 + n]
        if len(label) != n:
            raise DNSFormatError("truncated label")
        labels.append(label.decode("ascii", errors="replace"))
        pos += 1 + n
    else:
        raise DNSFormatError("name too long")
    return ".".join(labels).lower(), (end if end >= 0 else pos)


def parse_query(msg: bytes) -> Query:
    if len(msg) < _HEADER.size:
        raise DNSFormatError("short message")
    qid, flags, qd, _, _, _ = _HEADER.unpack_from(msg)
    if flags & 0x8000:
        raise DNSFormatError("not a query")
    if qd < 1:
        raise DNSFormatError("no question")
    name, pos = _read_name(msg, _HEADER.size)
    if pos + 4 > len(msg):
        raise DNSFormatError("truncated question")
    qtype, qclass = struct.unpack_from("!HH", msg, pos)
    return Query(qid, flags, Question(name, qtype, qclass), msg[_HEADER.size:pos + 4])


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.strip(".").split("."):
        if label:
            b = label.encode("ascii", errors="replace")[:63]
            out += bytes([len(b)]) + b
    return out + b"\0"


def _header(q: Query, rcode: int, ancount: int) -> bytes:
    # QR, opcode copied, AA (we are authoritative for container names), RD copied, RA
    flags = 0x8000 | (q.flags & 0x7800) | 0x0400 | (q.flags & 0x0100) | 0x0080 | rcode
    return _HEADER.pack(q.id, flags, 1, ancount, 0, 0)


def answer_a(q: Query, addresses: list[str], ttl: int = TTL) -> bytes:
    """A records (IPv4 addresses) or AAAA records (IPv6) for q's name, as q asks
    (pointer 0xC00C to the question's name); addresses of the other family are
    left out, so a name without one is NOERROR with no records (NODATA)."""
    rtype = TYPE_AAAA if q.question.qtype == TYPE_AAAA else TYPE_A
    packed = [p for a in addresses
              if len(p := ipaddress.ip_address(a).packed) == (16 if rtype == TYPE_AAAA else 4)]
    body = b""
    for p in packed:
        body += struct.pack("!HHHIH", 0xC00C, rtype, CLASS_IN, ttl, len(p)) + p
    return _header(q, RCODE_OK, len(packed)) + q.raw_question + body


def answer_ptr(q: Query, names: list[str], ttl: int = TTL) -> bytes:
    body = b""
    for n in names:
        rdata = encode_name(n)
        body += struct.pack("!HHHIH", 0xC00C, TYPE_PTR, CLASS_IN, ttl, len(rdata)) + rdata
    return _header(q, RCODE_OK, len(names)) + q.raw_question + body


def answer_empty(q: Query, rcode: int = RCODE_OK) -> bytes:
    """No records: NOERROR/NODATA, NXDOMAIN, SERVFAIL, ..."""
    return _header(q, rcode, 0) + q.raw_question


def error_reply(msg: bytes, rcode: int) -> bytes | None:
    """An answer for a message we could not parse (FORMERR), or None if hopeless."""
    if len(msg) < _HEADER.size:
        return None
    qid, flags = struct.unpack_from("!HH", msg)
    if flags & 0x8000:
        return None
    return _HEADER.pack(qid, 0x8000 | (flags & 0x7900) | 0x0080 | rcode, 0, 0, 0, 0)


def build_query(qid: int, name: str, qtype: int = TYPE_A) -> bytes:
    """A recursive query (for tests and tools)."""
    return _HEADER.pack(qid, 0x0100, 1, 0, 0, 0) + encode_name(name) + \
        struct.pack("!HH", qtype, CLASS_IN)


def reverse_name(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    if addr.version == 6:
        return addr.reverse_pointer
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


def ptr_address(name: str) -> str | None:
    """The address a PTR question names (`4.3.2.1.in-addr.arpa`, 32 nibbles +
    `.ip6.arpa`), in its canonical text form; None for anything else."""
    try:
        if name.endswith(".in-addr.arpa"):
            return str(ipaddress.IPv4Address(
                ".".join(reversed(name[:-len(".in-addr.arpa")].split(".")))))
        if name.endswith(".ip6.arpa"):
            nibbles = name[:-len(".ip6.arpa")].split(".")
            if len(nibbles) != 32 or any(len(n) != 1 for n in nibbles):
                return None
            return str(ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16)))
    except ValueError:
        return None
    return None


def parse_answer_a(msg: bytes) -> tuple[int, list[str]]:
    """(rcode, A and AAAA addresses) of a response: for tests."""
    _, flags, qd, an, _, _ = _HEADER.unpack_from(msg)
    pos = _HEADER.size
    for _ in range(qd):
        _, pos = _read_name(msg, pos)
        pos += 4
    out: list[str] = []
    for _ in range(an):
        _, pos = _read_name(msg, pos)
        rtype, _, _, rdlen = struct.unpack_from("!HHIH", msg, pos)
        pos += 10
        if rtype == TYPE_A and rdlen == 4:
            out.append(str(ipaddress.IPv4Address(msg[pos:pos + 4])))
        elif rtype == TYPE_AAAA and rdlen == 16:
            out.append(str(ipaddress.IPv6Address(msg[pos:pos + 16])))
        pos += rdlen
    return flags & 0xF, out
