"""Placeholders of a task's env, hostname and mount paths, as SwarmKit expands
them on the worker (its template package, Go templates): `{{.Service.ID}}`,
`{{.Service.Name}}`, `{{.Service.Labels.key}}` or `{{index .Service.Labels "k"}}`,
`{{.Node.ID}}`, `{{.Node.Hostname}}`, `{{.Node.Platform.OS}}`,
`{{.Node.Platform.Architecture}}`, `{{.Task.ID}}`, `{{.Task.Name}}`,
`{{.Task.Slot}}`. Anything else in `{{ }}` is an error (the task is rejected),
as a Go template that does not parse or execute would be."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import InvalidParameter

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_INDEX = re.compile(r'index\s+\.Service\.Labels\s+"((?:[^"\\]|\\.)*)"$')


@dataclass(frozen=True)
class TemplateContext:
    service_id: str = ""
    service_name: str = ""
    service_labels: dict[str, str] = field(default_factory=dict)
    node_id: str = ""
    node_hostname: str = ""
    node_os: str = ""
    node_arch: str = ""
    task_id: str = ""
    task_name: str = ""
    task_slot: str = ""

    def _field(self, expr: str) -> str:
        simple = {".Service.ID": self.service_id, ".Service.Name": self.service_name,
                  ".Node.ID": self.node_id, ".Node.Hostname": self.node_hostname,
                  ".Node.Platform.OS": self.node_os,
                  ".Node.Platform.Architecture": self.node_arch,
                  ".Task.ID": self.task_id, ".Task.Name": self.task_name,
                  ".Task.Slot": self.task_slot}
        if expr in simple:
            return simple[expr]
        if expr.startswith(".Service.Labels."):
            return self.service_labels.get(expr[len(".Service.Labels."):], "")
        if expr == ".Service.Labels":
            return "map[" + " ".join(f"{k}:{v}" for k, v in
                                     sorted(self.service_labels.items())) + "]"
        m = _INDEX.match(expr)
        if m:
            return self.service_labels.get(m.group(1).replace('\\"', '"'), "")
        raise InvalidParameter(f"template: expansion: can't evaluate {{{{{expr}}}}}")

    def expand(self, s: str) -> str:
        if "{{" not in s:
            return s
        return _ACTION.sub(lambda m: self._field(m.group(1)), s)

    def expand_env(self, env: list[str]) -> list[str]:
        """Each `KEY=value`: only the value is expanded (SwarmKit's ExpandContainerSpec)."""
        out = []
        for kv in env:
            key, sep, value = kv.partition("=")
            out.append(key + sep + self.expand(value) if sep else kv)
        return out
