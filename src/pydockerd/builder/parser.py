"""Dockerfile lexing: continuations, comments, the escape directive, JSON vs
shell form, flags, and ARG/ENV variable substitution."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import InvalidParameter
from ..images.changes import json_form

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


@dataclass
class Instruction:
    cmd: str                       # upper case: FROM, RUN...
    rest: str                      # text after the instruction word (flags removed)
    original: str                  # "RUN echo hi" as written (one line)
    flags: dict[str, str] = field(default_factory=dict)
    json: list[str] | None = None  # the JSON (exec) form, when rest is one


def _take_flags(rest: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        word, _, tail = rest.partition(" ")
        name, eq, value = word[2:].partition("=")
        if not name:
            break
        flags[name] = value if eq else "true"
        rest = tail.lstrip()
    return flags, rest


def parse(text: str) -> tuple[list[Instruction], str]:
    """The instructions of a Dockerfile and its escape character."""
    escape = "\\"
    lines = text.splitlines()
    i = 0
    while i < len(lines):                       # parser directives at the very top
        m = _DIRECTIVE.match(lines[i])
        if not m:
            break
        if m.group(1).lower() == "escape":
            if m.group(2) not in ("\\", "`"):
                raise InvalidParameter(f"invalid ESCAPE '{m.group(2)}'. Must be ` or \\")
            escape = m.group(2)
        i += 1
    out: list[Instruction] = []
    buf = ""
    for line in lines[i:]:
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and buf):
            continue                            # comments (also inside continuations)
        if line.rstrip().endswith(escape):
            buf += line.rstrip()[:-1]
            continue
        buf += line
        if buf.strip():
            out.append(_instruction(buf.strip()))
        buf = ""
    if buf.strip():
        out.append(_instruction(buf.strip()))
    return out, escape


def _instruction(line: str) -> Instruction:
    word, _, rest = line.partition(" ")
    if "\t" in word:
        word, _, more = word.partition("\t")
        rest = more + " " + rest
    rest = rest.strip()
    flags, rest = _take_flags(rest)
    return Instruction(word.upper(), rest, line, flags, json_form(rest))


_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def substitute(word: str, env: dict[str, str], escape: str = "\\") -> str:
    """$VAR ${VAR} ${VAR:-default} ${VAR:+alt}; an escaped `$` stays literal."""
    out: list[str] = []
    i = 0
    while i < len(word):
        ch = word[i]
        if ch == escape and i + 1 < len(word) and word[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        if ch == "'" and escape == "\\":         # single quotes: no substitution
            j = word.find("'", i + 1)
            if j > 0:
                out.append(word[i:j + 1])
                i = j + 1
                continue
        if ch == "$":
            m = _VAR.match(word, i)
            if m:
                name = m.group(1) or m.group(4)
                value = env.get(name)
                op, arg = m.group(2), m.group(3)
                if op == ":-":
                    out.append(value if value else substitute(arg or "", env, escape))
                elif op == ":+":
                    out.append(substitute(arg or "", env, escape) if value else "")
                else:
                    out.append(value or "")
                i = m.end()
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def words(text: str) -> list[str]:
    """Whitespace-split with double/single quotes grouping and quotes removed."""
    out: list[str] = []
    cur: list[str] = []
    quote = ""
    have = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"' and i + 1 < len(text):
                i += 1
                cur.append(text[i])
            else:
                cur.append(ch)
        elif ch in "\"'":
            quote, have = ch, True
        elif ch == "\\" and i + 1 < len(text):
            i += 1
            cur.append(text[i])
            have = True
        elif ch.isspace():
            if cur or have:
                out.append("".join(cur))
            cur, have = [], False
        else:
            cur.append(ch)
            have = True
        i += 1
    if quote:
        raise InvalidParameter(f"unmatched quote in {text!r}")
    if cur or have:
        out.append("".join(cur))
    return out


def pairs(cmd: str, rest: str) -> list[tuple[str, str]]:
    """ENV/LABEL/ARG arguments: k=v k2="v 2", or the legacy `ENV k v w`."""
    ws = words(rest)
    if not ws:
        raise InvalidParameter(f"{cmd} requires at least one argument")
    if "=" not in ws[0]:
        if cmd == "ARG":
            return [(ws[0], "")]
        name, _, value = rest.strip().partition(" ")
        if not value.strip():
            raise InvalidParameter(f"{cmd} names can not be blank" if not name else
                                   f"{cmd} must have two arguments")
        return [(name, " ".join(words(value)) if value.strip() else "")]
    out: list[tuple[str, str]] = []
    for w in ws:
        k, eq, v = w.partition("=")
        if not eq and cmd != "ARG":
            raise InvalidParameter(f"Syntax error - can't find = in \"{w}\". "
                                   "Must be of the form: name=value")
        if not k:
            raise InvalidParameter(f"{cmd} names can not be blank")
        out.append((k, v))
    return out
