"""Managed plugins (`docker plugin`, the /plugins API): plugins distributed as images
and run by the engine under runc (see docs/ARCHITECTURE.md, Plugins). service.py is
the front; config.py the plugin config, privileges and settings; state.py the records
on disk; runner.py the runs; install.py and transfer.py install, upgrade and push;
context.py `docker plugin create`'s tar."""
from __future__ import annotations

from .service import ManagedPlugins
from .state import PluginRecord, same_plugin

__all__ = ["ManagedPlugins", "PluginRecord", "same_plugin"]
