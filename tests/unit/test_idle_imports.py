"""What the daemon loads before any request: the heavy client libraries only a
pull, push, remote build context or plugin call needs stay out (they are loaded by
util/lazy.lazy_import on first use). aiohttp alone was ~12 MiB of the idle daemon's
memory when a module imported it eagerly (issue 10: idle RSS)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
LAZY = ("aiohttp", "yarl", "multidict", "prometheus_client", "zstandard",
        # the swarm agent's (about 25 MiB): loaded only when the node is in a swarm
        "grpc", "google", "h2", "cryptography")


def test_the_daemon_modules_do_not_load_the_lazy_libraries() -> None:
    # lazy_import leaves a module object in sys.modules that is not executed yet
    code = ("import sys, pydockerd.daemon\n"
            "loaded = {n.split('.')[0] for n, m in sys.modules.items()\n"
            "          if type(m).__name__ != '_LazyModule'}\n"
            f"print(sorted(loaded & set({LAZY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(SRC)), timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout
