"""Log driver names and options: what dockerd accepts at create, with its wording.

dockerd checks the option *names* at create and the *values* when the logger starts;
pydockerd checks both at create (a start that fails for a bad log option is too
late), with the message dockerd gives at start.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import InvalidParameter
from .golike import atoi, from_human_size, parse_bool, ram_in_bytes
from .remote import REMOTE, validate as validate_remote
from .tag import check_template

# drivers pydockerd runs, in `docker info` order (dockerd lists them sorted)
SUPPORTED = ("fluentd", "gelf", "journald", "json-file", "local", "syslog")
FILES = ("json-file", "local")              # written to files the daemon reads back
CLOUD = ("awslogs", "gcplogs", "splunk", "logentries", "etwlogs")

_JSON_FILE_OPTS = {"max-file", "max-size", "compress", "labels", "labels-regex", "env",
                   "env-regex", "tag"}
_LOCAL_OPTS = {"max-file", "max-size", "compress"}
_BUILTIN_OPTS = {"mode", "max-buffer-size"}
_CACHE_OPTS = {"cache-disabled", "cache-max-size", "cache-max-file", "cache-compress"}
LOCAL_DEFAULT_SIZE = 20 << 20
LOCAL_DEFAULT_FILES = 5


@dataclass(frozen=True)
class FileOptions:
    """Rotation of a file driver: capacity -1 means never rotate."""
    capacity: int
    max_files: int
    compress: bool


def file_options(driver: str, opts: Mapping[str, str]) -> FileOptions:
    """The rotation settings of json-file or local; ValueError with dockerd's text."""
    if driver == "local":
        return _local_options(opts)
    cap = -1
    if "max-size" in opts:
        cap = from_human_size(opts["max-size"])
        if cap <= 0:
            raise ValueError("max-size must be a positive number")
    files = 1
    if "max-file" in opts:
        files = atoi(opts["max-file"])
        if files < 1:
            raise ValueError("max-file cannot be less than 1")
    compress = False
    if "compress" in opts:
        compress = parse_bool(opts["compress"])
        if compress and (files == 1 or cap == -1):
            raise ValueError("compress cannot be true when max-file is less than 2 or "
                             "max-size is not set")
    return FileOptions(cap, files, compress)


def _local_options(opts: Mapping[str, str]) -> FileOptions:
    cap, files, compress = LOCAL_DEFAULT_SIZE, LOCAL_DEFAULT_FILES, True
    if "max-size" in opts:
        try:
            cap = from_human_size(opts["max-size"])
        except ValueError as e:
            raise ValueError(f"invalid value for max-size: {opts['max-size']}: {e}") from None
        if cap < 0:
            raise ValueError("max size should be a positive number")
    if "max-file" in opts:
        try:
            files = atoi(opts["max-file"])
        except ValueError as e:
            raise ValueError(f"error reading max-file log option: {e}") from None
        if files < 0:
            raise ValueError("max file count cannot be less than 0")
    if "compress" in opts:
        try:
            compress = parse_bool(opts["compress"])
        except ValueError as e:
            raise ValueError(f"error reading compress log option: {e}") from None
    if compress and files <= 1:
        raise ValueError("compression cannot be enabled when max file count is 1")
    return FileOptions(cap if cap > 0 else -1, max(files, 1), compress)


def merge_defaults(log_config: Mapping[str, Any] | None, default_type: str,
                   default_opts: Mapping[str, str]) -> dict[str, Any]:
    """dockerd's mergeAndVerifyLogConfig: the daemon's driver when none is named, and
    its options (those the container does not set) when the driver is the default;
    the dual-logging cache options of the daemon apply to every driver
    (logcache.MergeDefaultLogConfig)."""
    lc = dict(log_config or {})
    typ = lc.get("Type") or default_type
    cfg = {str(k): str(v) for k, v in dict(lc.get("Config") or {}).items()}
    for k, v in default_opts.items():
        if typ == default_type or k in _CACHE_OPTS:
            cfg.setdefault(k, v)
    return {"Type": typ, "Config": cfg}


def validate(driver: str, opts: Mapping[str, str]) -> None:
    """Every check dockerd makes on a log config (at create and at logger start)."""
    try:
        _validate(driver, opts)
    except ValueError as e:
        raise InvalidParameter(str(e)) from None


def _validate(driver: str, opts: Mapping[str, str]) -> None:
    if driver == "none":
        return
    mode = opts.get("mode", "")
    if mode not in ("", "blocking", "non-blocking"):
        raise ValueError(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in opts:
        if mode != "non-blocking":
            raise ValueError("logger: max-buffer-size option is only supported with "
                             "'mode=non-blocking'")
        try:
            ram_in_bytes(opts["max-buffer-size"])
        except ValueError as e:
            raise ValueError(f"error parsing option max-buffer-size: {e}") from None
    if driver in CLOUD:
        raise ValueError(f"logger: the {driver} log driver needs a cloud service "
                         "and is not supported by pydockerd")
    if driver not in SUPPORTED:
        raise ValueError(f'error looking up logging plugin {driver}: plugin "{driver}" '
                         "not found")
    _validate_cache(opts)
    if driver in REMOTE:
        validate_remote(driver, opts)
        return
    rest = [k for k in opts if k not in _BUILTIN_OPTS and k not in _CACHE_OPTS]
    allowed = _JSON_FILE_OPTS if driver == "json-file" else _LOCAL_OPTS
    for k in sorted(rest):
        if k not in allowed:
            if driver == "local":
                raise ValueError(f"unknown log opt '{k}' for log driver local")
            raise ValueError(f"unknown log opt '{k}' for {driver} log driver")
    try:
        file_options(driver, opts)
    except ValueError as e:
        raise ValueError(f"failed to initialize logging driver: {e}") from None
    for key in ("labels-regex", "env-regex"):
        if opts.get(key):
            try:
                re.compile(opts[key])
            except re.error as e:
                raise ValueError(f"failed to initialize logging driver: error parsing "
                                 f"regexp: {e}") from None
    if "tag" in opts:
        try:
            check_template(opts["tag"])
        except ValueError as e:
            raise ValueError(f"failed to initialize logging driver: {e}") from None


def _validate_cache(opts: Mapping[str, str]) -> None:
    if opts.get("cache-disabled"):
        try:
            parse_bool(opts["cache-disabled"])
        except ValueError:
            raise ValueError("invalid value for option cache-disabled: "
                             f"{opts['cache-disabled']}") from None
    try:
        cache_options(opts)
    except ValueError as e:
        raise ValueError(f"error initializing local log cache driver: {e}") from None


def uses_cache(driver: str, opts: Mapping[str, str]) -> bool:
    """dockerd's dual logging: a driver it cannot read back also writes a local cache
    (`container-cached.log`) that `docker logs` reads, unless cache-disabled."""
    if driver not in REMOTE or driver == "journald":
        return False
    return not (opts.get("cache-disabled") and parse_bool(opts["cache-disabled"]))


def readable(driver: str, opts: Mapping[str, str]) -> bool:
    """Whether `docker logs` can read this container's logs."""
    return driver in FILES or driver == "journald" or uses_cache(driver, opts)


def cache_options(opts: Mapping[str, str]) -> FileOptions:
    """The dual-logging cache's rotation, a `local` file: cache-max-size (20m),
    cache-max-file (5), cache-compress (true)."""
    return _local_options({k[len("cache-"):]: v for k, v in opts.items()
                           if k in ("cache-max-size", "cache-max-file", "cache-compress")})
