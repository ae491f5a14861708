"""What a log line says about its container: the `tag` template and the `attrs`
that `labels`, `labels-regex`, `env` and `env-regex` ask for (moby's logger.Info)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

_FIELD = re.compile(r"{{-?\s*\.(\w+)\s*-?}}")
_FIELDS = ("ID", "FullID", "Name", "Command", "ImageID", "ImageFullID", "ImageName",
           "Hostname", "DaemonName")
DEFAULT_TAG = "{{.ID}}"


@dataclass(frozen=True)
class ContainerInfo:
    """The container facts a driver may put into its messages (frozen at start)."""
    id: str
    name: str
    image_id: str = ""
    image_name: str = ""
    command: str = ""
    hostname: str = ""
    created: str = ""        # RFC3339Nano UTC (gelf's `_created`)
    labels: Mapping[str, str] = field(default_factory=dict)
    env: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)

    def value(self, name: str) -> str:
        image_hex = self.image_id.split(":", 1)[-1]
        return {"ID": self.id[:12], "FullID": self.id, "Name": self.name.lstrip("/"),
                "Command": self.command, "ImageID": image_hex[:12],
                "ImageFullID": self.image_id, "ImageName": self.image_name,
                "Hostname": self.hostname, "DaemonName": "docker"}[name]


def check_template(template: str) -> None:
    """Only `{{.Field}}` actions of logger.Info are supported."""
    rest = _FIELD.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise ValueError(f"template: log-tag: unsupported template action in {template!r} "
                         "(pydockerd supports {{.Field}} only)")
    for m in _FIELD.finditer(template):
        if m.group(1) not in _FIELDS:
            raise ValueError(f'template: log-tag:1:{m.start() + 3}: executing "log-tag" at '
                             f"<.{m.group(1)}>: can't evaluate field {m.group(1)} in type "
                             "logger.Info")


def render_tag(info: ContainerInfo, default: str = DEFAULT_TAG) -> str:
    """loggerutils.ParseLogTag: the `tag` option (else `default`) filled in."""
    template = info.options.get("tag") or default
    return _FIELD.sub(lambda m: info.value(m.group(1)), template)


def extra_attributes(info: ContainerInfo) -> dict[str, str]:
    """logger.Info.ExtraAttributes: labels and env values the options name."""
    extra: dict[str, str] = {}
    opts = info.options
    for key in (opts.get("labels") or "").split(","):
        if key and key in info.labels:
            extra[key] = info.labels[key]
    if opts.get("labels-regex"):
        rx = re.compile(opts["labels-regex"])
        extra.update({k: v for k, v in info.labels.items() if rx.search(k)})
    env: dict[str, str] = {}
    for item in info.env:
        k, sep, v = item.partition("=")
        if sep:
            env[k] = v
    for key in (opts.get("env") or "").split(","):
        if key and key in env:
            extra[key] = env[key]
    if opts.get("env-regex"):
        rx = re.compile(opts["env-regex"])
        extra.update({k: v for k, v in env.items() if rx.search(k)})
    return extra
