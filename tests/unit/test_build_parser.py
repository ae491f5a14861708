"""Dockerfile lexing and .dockerignore matching (builder/parser.py, context.py)."""
from __future__ import annotations

from pydockerd.builder.context import pattern_regex, ignored
from pydockerd.builder.parser import pairs, parse, substitute


def test_continuations_comments_escape_directive():
    text = "# escape=`\nFROM busybox AS b\n# comment\nRUN echo a `\n  # inside\n  && echo b\n" \
           "COPY --from=b --chown=1:2 [\"a b\", \"/c/\"]\n"
    ins, esc = parse(text)
    assert esc == "`"
    assert [i.cmd for i in ins] == ["FROM", "RUN", "COPY"]
    assert ins[1].rest == "echo a   && echo b"
    assert ins[2].flags == {"from": "b", "chown": "1:2"} and ins[2].json == ["a b", "/c/"]


def test_substitution_forms():
    env = {"A": "1", "E": ""}
    assert substitute("$A ${A} ${B:-d} ${A:+x} ${E:-e} \\$A '$A'", env) == "1 1 d x e $A '$A'"


def test_pairs_forms():
    assert pairs("ENV", 'A=1 B="two words"') == [("A", "1"), ("B", "two words")]
    assert pairs("ENV", "A one two") == [("A", "one two")]
    assert pairs("ARG", "NAME") == [("NAME", "")]


def test_dockerignore_patterns():
    rules = [(False, pattern_regex("*.key")), (False, pattern_regex("**/tmp")),
             (True, pattern_regex("keep.key"))]
    assert ignored("a.key", rules) and not ignored("keep.key", rules)
    assert ignored("x/y/tmp", rules) and ignored("tmp/file", rules)
    assert not ignored("dir/a.key", rules) and not ignored("a.txt", rules)
