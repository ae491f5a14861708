"""RUN: the command in an intermediate container (ContainerService: create,
attach, start, wait), its upper dir committed as the step's layer; the
container is removed afterwards, also when the command fails."""
from __future__ import annotations

import asyncio
import copy
from ..errors import InvalidParameter
from ..util.tasks import cancel_and_wait
from .stage import BuildSteps, RunOutput, Stage, StepFailed

_RED, _RESET = "\033[91m", "\033[0m"


async def run_step(b: BuildSteps, st: Stage, cmd: list[str]) -> None:
    env_keys = {e.partition("=")[0] for e in st.config.get("Env") or []}
    run_args = {k: v for k, v in st.args.items() if k not in env_keys}
    prefix = [f"|{len(run_args)}"] + [f"{k}={v}" for k, v in sorted(run_args.items())] \
        if run_args else []
    created_by = " ".join(prefix + cmd)
    if await b.cached(st, created_by):
        return
    parent = st.image
    if parent is None:
        raise InvalidParameter("cannot RUN in an image without files (FROM scratch): "
                               f"no such file or directory: {cmd[0]}")
    cfg = copy.deepcopy(st.config)
    cfg.update({"Image": parent.id, "Cmd": cmd, "Entrypoint": [], "Healthcheck": None,
                "OnBuild": None,
                "Env": list(cfg.get("Env") or []) + [f"{k}={v}" for k, v in
                                                     sorted(run_args.items())]})
    c = await b.containers.create(None, cfg, b.run_host_config(), None)
    b.say(f" ---> Running in {c.id[:12]}\n")
    attach: asyncio.Future[RunOutput] = asyncio.ensure_future(b.containers.attach(c.id))
    try:
        await asyncio.sleep(0)
        await b.containers.start(c.id)
        sess = await attach
        try:
            while True:
                got = await sess.recv()
                if got is None:
                    break
                text = got[1].decode("utf-8", errors="replace")
                # dockerd's StderrFormatter: each stderr write in bright red
                b.say(f"{_RED}{text}{_RESET}" if got[0] == "stderr" else text)
        finally:
            sess.close()
        done = await b.containers.wait(c.id)
        code = done.state.exit_code
        if code != 0:
            raise StepFailed(f"The command '{' '.join(cmd)}' returned a non-zero code: "
                             f"{code}", code)
        img = await b.committer.layer(parent, st.config,
                                         b.images.snapshots.upper_dir(c.id), created_by)
    finally:
        if attach.done() and not attach.cancelled() and attach.exception() is None:
            attach.result().close()         # a session the step did not get to read
        await cancel_and_wait(attach)       # a failed start is reported above
        b.say(f"Removing intermediate container {c.id[:12]}\n")
        await b.containers.remove(c.id, force=True)
    b.step_done(st, parent, created_by, img)
