"""pydockerd: a Docker Engine written in Python."""

__version__ = "28.0.0-pydockerd"
