"""An OCI seccomp profile compiled to a classic BPF program with libseccomp, the
way runc does it for `runc exec` (libcontainer/seccomp), for the daemon's own
exec path (runtime/nsexec.py).

runc rebuilds the filter at every exec; here a profile is compiled once (in a
worker thread) and its program kept, keyed by the profile's JSON, so an exec
only loads it. `compile_profile` answers None where runc's result cannot be
reproduced (libseccomp missing, a notify action, an unknown flag or arch), and
the caller then uses runc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import struct
import threading
from dataclasses import dataclass
from typing import Any

_ACT_KILL_THREAD = 0x00000000
_ACT_KILL_PROCESS = 0x80000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000

_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
        "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# seccomp(2) SECCOMP_SET_MODE_FILTER flags runc 1.1 knows
_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
          "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
_SCMP_FLTATR_CTL_NNP = 3
_NR_SCMP_ERROR = -1
_PERMISSIVE = (_ACT_ALLOW, _ACT_LOG)
_AUDIT_ARCH_X86_64 = 0xC000003E
_SCMP_ARCH_X32 = 0x4000003E      # libseccomp's token; the kernel reports x86_64
_X32_BIT = 0x40000000
# classic BPF opcodes
_LD_ABS = 0x20
_JEQ = 0x15
_JGT = 0x25
_JSET = 0x45
_JA = 0x05
_RET = 0x06
_MAX_ARGS = 6
_CACHE_SIZE = 32


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


@dataclass(frozen=True)
class SeccompProgram:
    bpf: bytes          # struct sock_filter[], as the kernel takes it
    flags: int          # seccomp(2) flags


class _Unsupported(Exception):
    pass


_lib: ctypes.CDLL | None = None
_lib_tried = False
_lock = threading.Lock()
_cache: dict[str, SeccompProgram | None] = {}


def _libseccomp() -> ctypes.CDLL | None:
    global _lib, _lib_tried
    if not _lib_tried:
        _lib_tried = True
        name = ctypes.util.find_library("seccomp")
        if name:
            try:
                lib = ctypes.CDLL(name, use_errno=True)
                lib.seccomp_init.restype = ctypes.c_void_p
                lib.seccomp_init.argtypes = [ctypes.c_uint32]
                lib.seccomp_release.argtypes = [ctypes.c_void_p]
                lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
                lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
                lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
                lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
                lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
                lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32,
                                                                  ctypes.c_char_p]
                lib.seccomp_rule_add_array.argtypes = [
                    ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                    ctypes.POINTER(_ArgCmp)]
                lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
                _lib = lib
            except (OSError, AttributeError):
                _lib = None
    return _lib


def compile_profile(profile: dict[str, Any]) -> SeccompProgram | None:
    """The BPF program runc would load for `profile` (the OCI `linux.seccomp`), or
    None when this cannot be done here."""
    key = json.dumps(profile, sort_keys=True)
    with _lock:
        if key in _cache:
            return _cache[key]
        try:
            prog: SeccompProgram | None = _compile(profile)
        except _Unsupported:
            prog = None
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = prog
        return prog


def _action(name: str, errno_ret: int | None) -> int:
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return _ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return _ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return _ACT_TRAP
    if name == "SCMP_ACT_ALLOW":
        return _ACT_ALLOW
    if name == "SCMP_ACT_LOG":
        return _ACT_LOG
    ret = errno.EPERM if errno_ret is None else errno_ret
    if name == "SCMP_ACT_ERRNO":
        return _ACT_ERRNO | (ret & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return _ACT_TRACE | (ret & 0xFFFF)
    raise _Unsupported(name)          # SCMP_ACT_NOTIFY needs runc's listener


def _compile(profile: dict[str, Any]) -> SeccompProgram:
    lib = _libseccomp()
    if lib is None or profile.get("listenerPath"):
        raise _Unsupported("libseccomp")
    flags = 0
    for f in profile.get("flags") or []:
        if f not in _FLAGS:
            raise _Unsupported(f)
        flags |= _FLAGS[f]
    default = _action(profile.get("defaultAction", ""), profile.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise _Unsupported("seccomp_init")
    try:
        for arch in profile.get("architectures") or []:
            token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
            if token == 0:
                raise _Unsupported(arch)
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -errno.EEXIST:
                raise _Unsupported(arch)
        if lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_NNP, 0) < 0:
            raise _Unsupported("nnp attribute")
        for call in profile.get("syscalls") or []:
            _add_rules(lib, ctx, call, default)
        stub = b"" if default in _PERMISSIVE or default & 0xFFFF0000 == _ACT_TRACE \
            else _enosys_stub(lib, profile)
        return SeccompProgram(stub + _export(lib, ctx), flags)
    finally:
        lib.seccomp_release(ctx)


def _add_rules(lib: ctypes.CDLL, ctx: int, call: dict[str, Any], default: int) -> None:
    """runc's matchCall for each name of an OCI syscall entry."""
    action = _action(call.get("action", ""), call.get("errnoRet"))
    if action == default:
        return                      # redundant: runc skips it
    conds = []
    counts = [0] * _MAX_ARGS
    for a in call.get("args") or []:
        idx, op = int(a.get("index", 0)), _OPS.get(a.get("op", ""))
        if op is None or not 0 <= idx < _MAX_ARGS:
            raise _Unsupported(str(a))
        counts[idx] += 1
        conds.append(_ArgCmp(idx, op, int(a.get("value", 0)), int(a.get("valueTwo", 0))))
    # two conditions on one argument: one rule per condition (runc's old behaviour)
    groups = [[c] for c in conds] if any(n > 1 for n in counts) else [conds]
    for name in call.get("names") or []:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr == _NR_SCMP_ERROR:
            continue                # unknown to this libseccomp: runc ignores it
        # (other negative numbers are libseccomp's pseudo syscalls: a syscall other
        # architectures of the filter have, e.g. i386's socketcall)
        for group in groups:
            arr = (_ArgCmp * len(group))(*group)
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), arr)
            if rc < 0:
                raise _Unsupported(f"{name}: {os.strerror(-rc)}")


def _enosys_stub(lib: ctypes.CDLL, profile: dict[str, Any]) -> bytes:
    """runc's -ENOSYS prologue (libcontainer/seccomp/patchbpf): a syscall numbered
    above every syscall the profile names (for the caller's architecture) is newer
    than the profile, and gets ENOSYS, which libcs take as "fall back", rather than
    the default action (EPERM). Then the libseccomp program runs, from its start."""
    names = [n for call in profile.get("syscalls") or [] for n in call.get("names") or []]
    sections: dict[int, dict[int, int]] = {}      # audit arch -> {libseccomp arch: max nr}
    for arch in profile.get("architectures") or []:
        token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
        if arch.lower().startswith("scmp_arch_s390"):
            raise _Unsupported(arch)       # runc's extra multiplexer rule: not here
        nrs = [lib.seccomp_syscall_resolve_name_arch(token, n.encode()) for n in names]
        top = max([n for n in nrs if n >= 0], default=0)
        if top:
            native = _AUDIT_ARCH_X86_64 if token == _SCMP_ARCH_X32 else token
            sections.setdefault(native, {})[token] = top
    if not sections:
        return b""
    prog: list[tuple[int, int | str, int | str, int]] = [(_LD_ABS, 0, 0, 4)]
    prog += [(_JEQ, f"arch{a}", 0, a) for a in sections]
    prog.append((_JA, 0, 0, -1))                          # k: to the filter
    labels: dict[str, int] = {}
    for native, tops in sections.items():
        labels[f"arch{native}"] = len(prog)
        prog.append((_LD_ABS, 0, 0, 0))
        x64, x32 = tops.get(_AUDIT_ARCH_X86_64), tops.get(_SCMP_ARCH_X32)
        if native == _AUDIT_ARCH_X86_64 and x64 and x32:
            prog.append((_JSET, 1, 0, _X32_BIT))
            prog.append((_JGT, "enosys", "filter", x64))
            prog.append((_JGT, "enosys", "filter", x32))
        elif native == _AUDIT_ARCH_X86_64:
            # only one of the two ABIs listed: the other goes straight to the filter
            prog.append((_JSET, "filter", 0, _X32_BIT) if x64 else (_JSET, 0, "filter", _X32_BIT))
            prog.append((_JGT, "enosys", "filter", x64 or x32 or 0))
        else:
            prog.append((_JGT, "enosys", "filter", next(iter(tops.values()))))
    labels["enosys"] = len(prog)
    prog.append((_RET, 0, 0, _ACT_ERRNO | errno.ENOSYS))
    labels["filter"] = len(prog)
    out = bytearray()
    for i, (code, jt, jf, k) in enumerate(prog):
        jt_n, jf_n = (labels[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf))
        if code == _JA:
            k = labels["filter"] - i - 1
        if not (0 <= jt_n < 256 and 0 <= jf_n < 256):
            raise _Unsupported("ENOSYS stub jump")
        out += struct.pack("=HBBI", code, jt_n, jf_n, k)
    return bytes(out)


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        if lib.seccomp_export_bpf(ctx, fd) < 0:
            raise _Unsupported("export")
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)
