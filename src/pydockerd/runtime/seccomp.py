"""Seccomp: Docker's default profile (a fact table) and its resolution to OCI form.

Docker-format profiles (moby/profiles/seccomp, the format `--security-opt
seccomp=<file>` sends and `dockerd --seccomp-profile` reads) extend the OCI
`linux.seccomp` object with `archMap` and per-rule `includes`/`excludes`
filters on capabilities, architectures and kernel version. `resolve_profile`
expands those for one container into the plain OCI object runc reads.

The data below is moby's profiles/seccomp/default.json (moby/profiles v0.2.3,
Apache-2.0), transcribed as Python. runc 1.1.5 with libseccomp 2.5.4 skips
syscall names libseccomp does not know (e.g. newer ones), so the table can
list syscalls this host's libseccomp has never heard of.
"""
from __future__ import annotations

import copy
import json
import os
import platform
from collections.abc import Iterable
from typing import Any

from pydockerd.errors import InvalidParameter

UNCONFINED = "unconfined"
BUILTIN = "builtin"

# Python's platform.machine() → the libseccomp/Go arch names used by "arches" filters.
_MACHINE_TO_NATIVE = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loong64",
    "mips64": "mips64",
}

# libseccomp native arch name → OCI SCMP_ARCH_* name (for archMap selection).
_NATIVE_TO_SCMP = {
    "x86": "SCMP_ARCH_X86",
    "amd64": "SCMP_ARCH_X86_64",
    "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64",
    "loong64": "SCMP_ARCH_LOONGARCH64",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mips3l64n32": "SCMP_ARCH_MIPSEL64N32",
    "mipsle": "SCMP_ARCH_MIPSEL",
    "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "riscv64": "SCMP_ARCH_RISCV64",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
}

_ARCH_MAP: list[dict[str, Any]] = [
    {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    {"architecture": "SCMP_ARCH_MIPS64", "subArchitectures": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"]},
    {"architecture": "SCMP_ARCH_MIPS64N32", "subArchitectures": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"]},
    {"architecture": "SCMP_ARCH_MIPSEL64", "subArchitectures": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"]},
    {"architecture": "SCMP_ARCH_MIPSEL64N32", "subArchitectures": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"]},
    {"architecture": "SCMP_ARCH_S390X", "subArchitectures": ["SCMP_ARCH_S390"]},
    {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": []},
    {"architecture": "SCMP_ARCH_LOONGARCH64", "subArchitectures": []},
]

_SYSCALL_RULES: list[dict[str, Any]] = [
    {
        "names": [
            "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk",
            "cachestat", "capget", "capset", "chdir", "chmod", "chown", "chown32",
            "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
            "clock_gettime", "clock_gettime64", "clock_nanosleep",
            "clock_nanosleep_time64", "close", "close_range", "connect",
            "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
            "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
            "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
            "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2",
            "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir",
            "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
            "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork",
            "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs",
            "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue",
            "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futimesat",
            "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32",
            "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32",
            "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid",
            "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
            "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid",
            "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
            "getuid", "getuid32", "getxattr", "getxattrat", "inotify_add_watch",
            "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
            "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
            "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc", "kill",
            "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
            "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listmount",
            "listxattr", "listxattrat", "llistxattr", "_llseek", "lremovexattr",
            "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack",
            "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat",
            "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2",
            "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
            "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
            "mq_unlink", "mremap", "mseal", "msgctl", "msgget", "msgrcv", "msgsnd",
            "msync", "munlock", "munlockall", "munmap", "name_to_handle_at",
            "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2",
            "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
            "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl",
            "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
            "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead",
            "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg",
            "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr",
            "removexattrat", "rename", "renameat", "renameat2", "restart_syscall",
            "riscv_hwprobe", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
            "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
            "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
            "sched_getaffinity", "sched_getattr", "sched_getparam",
            "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
            "sched_rr_get_interval", "sched_rr_get_interval_time64",
            "sched_setaffinity", "sched_setattr", "sched_setparam",
            "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl",
            "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile",
            "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32",
            "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
            "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
            "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid",
            "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt",
            "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
            "setxattrat", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
            "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn",
            "socketcall", "socketpair", "splice", "stat", "stat64", "statfs",
            "statfs64", "statmount", "statx", "symlink", "symlinkat", "sync",
            "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time",
            "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
            "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create",
            "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
            "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
            "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "uretprobe", "utime",
            "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4",
            "waitid", "waitpid", "write", "writev"
        ],
        "action": "SCMP_ACT_ALLOW",
    },
    {
        "names": ["process_vm_readv", "process_vm_writev", "ptrace"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"minKernel": "4.8"},
    },
    {
        "names": ["socket"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 38, "op": "SCMP_CMP_LT"}],
    },
    {
        "names": ["socket"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 39, "op": "SCMP_CMP_EQ"}],
    },
    {
        "names": ["socket"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_GT"}],
    },
    {
        "names": ["personality"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}],
    },
    {
        "names": ["personality"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
    },
    {
        "names": ["personality"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 131072, "op": "SCMP_CMP_EQ"}],
    },
    {
        "names": ["personality"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 131080, "op": "SCMP_CMP_EQ"}],
    },
    {
        "names": ["personality"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}],
    },
    {
        "names": ["sync_file_range2", "swapcontext"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"arches": ["ppc64le"]},
    },
    {
        "names": [
            "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
            "cacheflush", "set_tls"
        ],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"arches": ["arm", "arm64"]},
    },
    {
        "names": ["arch_prctl"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"arches": ["amd64", "x32"]},
    },
    {
        "names": ["modify_ldt"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"arches": ["amd64", "x32", "x86"]},
    },
    {
        "names": ["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"arches": ["s390", "s390x"]},
    },
    {
        "names": ["riscv_flush_icache"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"arches": ["riscv64"]},
    },
    {
        "names": ["open_by_handle_at"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_DAC_READ_SEARCH"]},
    },
    {
        "names": [
            "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen",
            "fspick", "lookup_dcookie", "lsm_get_self_attr", "lsm_list_modules",
            "lsm_set_self_attr", "mount", "mount_setattr", "move_mount", "open_tree",
            "perf_event_open", "quotactl", "quotactl_fd", "setdomainname",
            "sethostname", "setns", "syslog", "umount", "umount2", "unshare"
        ],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYS_ADMIN"]},
    },
    {
        "names": ["clone"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}],
        "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]},
    },
    {
        "names": ["clone"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 1, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}],
        "comment": "s390 parameter ordering for clone is different",
        "includes": {"arches": ["s390", "s390x"]},
        "excludes": {"caps": ["CAP_SYS_ADMIN"]},
    },
    {
        "names": ["clone3"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": 38,
        "excludes": {"caps": ["CAP_SYS_ADMIN"]},
    },
    {
        "names": ["reboot"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYS_BOOT"]},
    },
    {
        "names": ["chroot"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYS_CHROOT"]},
    },
    {
        "names": ["delete_module", "init_module", "finit_module"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYS_MODULE"]},
    },
    {
        "names": ["acct"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYS_PACCT"]},
    },
    {
        "names": [
            "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
            "process_vm_writev", "ptrace"
        ],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYS_PTRACE"]},
    },
    {
        "names": ["iopl", "ioperm"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYS_RAWIO"]},
    },
    {
        "names": ["settimeofday", "stime", "clock_settime", "clock_settime64"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYS_TIME"]},
    },
    {
        "names": ["vhangup"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYS_TTY_CONFIG"]},
    },
    {
        "names": ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYS_NICE"]},
    },
    {
        "names": ["syslog"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYSLOG"]},
    },
    {
        "names": ["bpf"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_BPF"]},
    },
    {
        "names": ["perf_event_open"],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_PERFMON"]},
    },
]


def native_arch(machine: str | None = None) -> str:
    """This host's architecture in libseccomp's naming ("amd64", "arm64", ...)."""
    m = machine or platform.machine()
    return _MACHINE_TO_NATIVE.get(m, m)


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of the running kernel; "6.18.44-fc" → (6, 18)."""
    rel = release if release is not None else os.uname().release
    parts = rel.split("-", 1)[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return 0, 0


def docker_default_profile() -> dict[str, Any]:
    """Docker's default profile in Docker format (a fresh copy, safe to modify)."""
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,  # EPERM
        "archMap": copy.deepcopy(_ARCH_MAP),
        "syscalls": copy.deepcopy(_SYSCALL_RULES),
    }


def default_profile(
    caps: Iterable[str] | None = None,
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Docker's default profile resolved to an OCI `linux.seccomp` object.

    `caps` is the container's capability (bounding) set; by default Docker's
    14 default capabilities.
    """
    if caps is None:
        from pydockerd.runtime.caps import DEFAULT_CAPABILITIES

        caps = DEFAULT_CAPABILITIES
    # resolved once per capability set (every container of a daemon mostly has the
    # same one); a copy each time, from the JSON text: 5x cheaper than resolving
    key = (frozenset(caps), arch, kernel)
    text = _RESOLVED.get(key)
    if text is None:
        resolved = resolve_profile(docker_default_profile(), key[0], arch, kernel)
        assert resolved is not None
        text = _RESOLVED[key] = json.dumps(resolved)
        while len(_RESOLVED) > 16:
            del _RESOLVED[next(iter(_RESOLVED))]
    profile: dict[str, Any] = json.loads(text)
    return profile


_RESOLVED: dict[tuple[frozenset[str], str | None, tuple[int, int] | None], str] = {}


def profile_for(
    caps: Iterable[str],
    custom_json: str | None,
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any] | None:
    """The OCI seccomp object for a container; None means unconfined.

    custom_json: None or "builtin" → Docker's default profile; "unconfined" →
    None; anything else is the content of a Docker-format (or plain OCI)
    profile, as the CLI sends for `--security-opt seccomp=<file>`.
    """
    caps = list(caps)
    if custom_json is None or custom_json.strip() == BUILTIN:
        return default_profile(caps, arch, kernel)
    if custom_json.strip() == UNCONFINED:
        return None
    try:
        profile = json.loads(custom_json)
    except ValueError as e:
        raise InvalidParameter(f"Decoding seccomp profile failed: {e}") from None
    if not isinstance(profile, dict):
        raise InvalidParameter("Decoding seccomp profile failed: profile is not a JSON object")
    return resolve_profile(profile, caps, arch, kernel)


def resolve_profile(
    profile: dict[str, Any],
    caps: Iterable[str],
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any] | None:
    """Expand a Docker-format profile's archMap and includes/excludes for one container."""
    cap_set = set(caps)
    native = arch or native_arch()
    kver = kernel or kernel_version()
    syscalls_in = profile.get("syscalls") or []
    if not profile.get("defaultAction") and not syscalls_in:
        return None  # nothing specified: seccomp disabled, as in moby
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidParameter(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, "
            "use either 'architectures' or 'archMap'"
        )
    out: dict[str, Any] = {
        k: copy.deepcopy(v)
        for k, v in profile.items()
        if k not in ("archMap", "syscalls", "comment")
    }
    if profile.get("archMap"):
        scmp = _NATIVE_TO_SCMP.get(native)
        arches: list[str] = []
        for entry in profile["archMap"]:
            if entry.get("architecture") == scmp:
                arches = [str(scmp), *(entry.get("subArchitectures") or [])]
                break
        out["architectures"] = arches
    rules: list[dict[str, Any]] = []
    for rule in syscalls_in:
        if not isinstance(rule, dict):
            raise InvalidParameter("Decoding seccomp profile failed: bad syscall rule")
        names = list(rule.get("names") or [])
        if rule.get("name"):
            if names:
                raise InvalidParameter(
                    "both 'name' and 'names' are specified in the seccomp profile, "
                    "use either 'name' or 'names'"
                )
            names = [rule["name"]]
        if not _rule_applies(rule, cap_set, native, kver):
            continue
        oci_rule: dict[str, Any] = {"names": names, "action": rule.get("action", "")}
        for key in ("errnoRet", "args"):
            if rule.get(key) is not None:
                oci_rule[key] = copy.deepcopy(rule[key])
        rules.append(oci_rule)
    out["syscalls"] = rules
    return out


def _parse_min_kernel(value: Any) -> tuple[int, int] | None:
    if not value:
        return None
    parts = str(value).split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise InvalidParameter(f'invalid kernel version: "{value}", expected "<kernel>.<major>"')
    return int(parts[0]), int(parts[1])


def _rule_applies(
    rule: dict[str, Any], caps: set[str], arch: str, kernel: tuple[int, int]
) -> bool:
    excludes = rule.get("excludes") or {}
    if arch in (excludes.get("arches") or []):
        return False
    if any(c in caps for c in excludes.get("caps") or []):
        return False
    min_k = _parse_min_kernel(excludes.get("minKernel"))
    if min_k is not None and kernel >= min_k:
        return False
    includes = rule.get("includes") or {}
    inc_arches = includes.get("arches") or []
    if inc_arches and arch not in inc_arches:
        return False
    if not all(c in caps for c in includes.get("caps") or []):
        return False
    min_k = _parse_min_kernel(includes.get("minKernel"))
    if min_k is not None and kernel < min_k:
        return False
    return True
