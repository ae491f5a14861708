"""util/gzipfast.py: the layer gzip reader (as `gzip -d`) and the push deflater,
through ISA-L and through zlib alone (when the isal package is missing)."""
from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterator

import pytest

from pydockerd.util import gzipfast
from pydockerd.util.gzipfast import GunzipReader, deflater


@pytest.fixture(params=["isal", "zlib"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "isal":
        pytest.importorskip("isal")
    else:
        monkeypatch.setattr(gzipfast, "_isal", lambda: None)
    yield request.param


def read_all(data: bytes, step: int) -> bytes:
    r = GunzipReader(io.BytesIO(data))
    out = []
    while b := r.read(step):
        assert len(b) <= step
        out.append(b)
    return b"".join(out)


PAYLOAD = os.urandom(3 << 20) + b"abc" * (1 << 20) + bytes(5 << 20)


@pytest.mark.parametrize("step", [1, 511, 10240, 1 << 20, 3 << 20])
def test_reads_what_gzip_wrote(backend: str, step: int) -> None:
    data = PAYLOAD if step > 511 else PAYLOAD[:200_000]   # 1-byte reads: keep it short
    assert read_all(gzip.compress(data, mtime=0), step) == data


def test_members_and_zero_padding_as_gzip_d(backend: str) -> None:
    blob = gzip.compress(b"first ") + bytes(10) + gzip.compress(b"") + \
        gzip.compress(b"second") + bytes(3)
    assert read_all(blob, 4) == b"first second"
    assert GunzipReader(io.BytesIO(blob)).read() == gzip.decompress(blob)


def test_truncated_stream_is_eof_error(backend: str) -> None:
    blob = gzip.compress(PAYLOAD[:1 << 20])
    for cut in (5, len(blob) // 2, len(blob) - 4):
        with pytest.raises(EOFError):
            read_all(blob[:cut], 1 << 16)


@pytest.mark.parametrize("bad", ["header", "body", "crc"])
def test_bad_data_is_zlib_error(backend: str, bad: str) -> None:
    blob = bytearray(gzip.compress(PAYLOAD[:1 << 20]))
    pos = {"header": 0, "body": len(blob) // 2, "crc": len(blob) - 6}[bad]
    blob[pos] ^= 0xFF
    with pytest.raises(zlib.error):
        read_all(bytes(blob), 1 << 16)


def test_a_bomb_costs_no_memory(backend: str) -> None:
    bomb = gzip.compress(bytes(256 << 20), compresslevel=9)    # 256 MiB in ~250 KB
    r = GunzipReader(io.BytesIO(bomb))
    assert len(r.read(100)) == 100
    assert len(r._out) <= 64 << 10                             # one piece at a time


def test_deflater_output_is_gzip_and_reproducible(backend: str) -> None:
    def deflate() -> bytes:
        d = deflater()
        return b"".join(d.compress(PAYLOAD[i:i + (1 << 20)])
                        for i in range(0, len(PAYLOAD), 1 << 20)) + d.flush()
    out = deflate()
    assert out[:2] == b"\x1f\x8b" and out[4:8] == bytes(4)    # gzip, mtime 0
    assert gzip.decompress(out) == PAYLOAD
    assert deflate() == out


def test_incompressible_data_goes_out_stored() -> None:
    """ISA-L codes random bytes as Huffman literals, slow to inflate for every
    puller; the deflater writes such pieces as stored blocks (the bytes verbatim)."""
    pytest.importorskip("isal")
    noise = os.urandom(gzipfast.SEGMENT * 2 + 12345)
    text = b"all work and no play " * 40000
    d = deflater()
    out = b"".join(d.compress(p[i:i + 70000]) for p in (noise, text)
                   for i in range(0, len(p), 70000)) + d.flush()
    assert gzip.decompress(out) == noise + text
    assert read_all(out, 1 << 16) == noise + text
    for at in (100, gzipfast.SEGMENT + 70000):                # (within stored blocks)
        assert noise[at:at + 4000] in out                       # stored, not coded
    assert len(out) < len(noise) + len(text) // 20              # the text compressed
