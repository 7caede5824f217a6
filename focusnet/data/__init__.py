"""Data: image/mask reading, datasets, splits and the embedded synthetic demo sets."""
from __future__ import annotations
