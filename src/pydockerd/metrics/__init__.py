"""Prometheus metrics under dockerd's names (--metrics-addr). The daemon imports
this package, and with it prometheus_client, only when --metrics-addr is set."""
from .families import Families
from .server import MetricsServer

__all__ = ["Families", "MetricsServer"]
