"""Legacy ("v1") Docker plugins: discovery, the HTTP client, the registry of activated
plugins (see docs/ARCHITECTURE.md, Plugins). Consumers (volume, network and IPAM
drivers, authorization) ask the registry for a plugin implementing their kind and call it
through its client (the drivers with call_checked, for answers carrying `Err`)."""
from __future__ import annotations

from .client import PluginCallError, PluginClient, PluginUnavailable, call_checked
from .discovery import PluginDirs, PluginSpec, TLSOptions
from .registry import Plugin, PluginRegistry

__all__ = ["Plugin", "PluginCallError", "PluginClient", "PluginDirs", "PluginRegistry",
           "PluginSpec", "PluginUnavailable", "TLSOptions", "call_checked"]
