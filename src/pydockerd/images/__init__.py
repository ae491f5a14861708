"""Images: content and layer stores, references, load, and containers' rootfs snapshots."""
from .model import DiskUsage, HistoryEntry, Image, ImageUsage, LayerInfo
from .references import Reference, parse_normalized
from .service import ImageService

__all__ = ["DiskUsage", "HistoryEntry", "Image", "ImageService", "ImageUsage", "LayerInfo",
           "Reference", "parse_normalized"]
