#!/usr/bin/env bash
# Write pydockerd.service and pydockerd.socket (contrib/systemd) into DIR, with
# ExecStart naming the `pydockerd` console script of this python3's install.
# Used by scripts/install.sh (DIR=/etc/systemd/system) and by the tests.
set -euo pipefail
dest=${1:?usage: systemd-units.sh DIR}
cd "$(dirname "$0")/.."
bin=$(python3 - <<'PY'
import importlib.metadata
import os
for f in importlib.metadata.distribution("pydockerd").files or ():
    if f.name == "pydockerd" and f.parent.name == "bin":
        print(os.path.realpath(f.locate()))
        break
PY
)
if [ ! -x "$bin" ]; then
  echo "systemd-units.sh: no pydockerd console script found (pip install the package first)" >&2
  exit 1
fi
install -d "$dest"
sed "s#^ExecStart=/usr/local/bin/pydockerd #ExecStart=$bin #" contrib/systemd/pydockerd.service \
  > "$dest/.pydockerd.service.tmp"
chmod 0644 "$dest/.pydockerd.service.tmp"
mv -f "$dest/.pydockerd.service.tmp" "$dest/pydockerd.service"
install -m 0644 contrib/systemd/pydockerd.socket "$dest/pydockerd.socket"
