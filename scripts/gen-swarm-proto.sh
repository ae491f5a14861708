#!/usr/bin/env bash
# Regenerate the checked-in protobuf code of the swarm agent from our own
# src/pydockerd/swarm/proto/swarmkit.proto (needs grpcio-tools: pip install
# grpcio-tools). tests/unit/test_swarm_proto.py checks the two agree.
set -euo pipefail
cd "$(dirname "$0")/../src/pydockerd/swarm/proto"
python3 -m grpc_tools.protoc -I. --python_out=. --pyi_out=. swarmkit.proto
