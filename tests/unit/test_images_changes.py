"""--change instructions applied to an image config (docker import / commit)."""
from __future__ import annotations

import pytest

from pydockerd.errors import InvalidParameter
from pydockerd.images.changes import apply_changes, split_changes


def test_each_instruction():
    c = apply_changes({"Env": ["PATH=/bin"], "Cmd": ["sh"]}, [
        'ENV A=1 B="two words"', "ENV C $A-x", "LABEL a=b", "EXPOSE 80 53/udp 1000-1001",
        "USER nobody", "WORKDIR /srv", "WORKDIR app", "VOLUME /data", 'VOLUME ["/v"]',
        "STOPSIGNAL SIGINT", "ONBUILD RUN echo hi", 'ENTRYPOINT ["/bin/x"]'])
    assert c["Env"] == ["PATH=/bin", "A=1", "B=two words", "C=1-x"]
    assert c["Labels"] == {"a": "b"}
    assert set(c["ExposedPorts"]) == {"80/tcp", "53/udp", "1000/tcp", "1001/tcp"}
    assert c["User"] == "nobody" and c["WorkingDir"] == "/srv/app"
    assert c["Volumes"] == {"/data": {}, "/v": {}}
    assert c["StopSignal"] == "SIGINT" and c["OnBuild"] == ["RUN echo hi"]
    assert c["Entrypoint"] == ["/bin/x"] and c["Cmd"] is None   # ENTRYPOINT resets CMD


def test_cmd_forms_and_order():
    c = apply_changes({}, ["CMD echo hi", 'ENTRYPOINT ["e"]'])
    assert c["Cmd"] == ["/bin/sh", "-c", "echo hi"] and c["Entrypoint"] == ["e"]
    assert apply_changes({}, ['cmd ["a", "b"]'])["Cmd"] == ["a", "b"]


def test_errors_and_input_untouched():
    base = {"Env": ["A=1"]}
    with pytest.raises(InvalidParameter, match="not a valid change command"):
        apply_changes(base, ["RUN echo"])
    with pytest.raises(InvalidParameter):
        apply_changes(base, ["EXPOSE 80/foo"])
    apply_changes(base, ["ENV B=2"])
    assert base == {"Env": ["A=1"]}


def test_split_changes():
    assert split_changes(["ENV A=1\nCMD x", "", "USER u"]) == ["ENV A=1", "CMD x", "USER u"]
