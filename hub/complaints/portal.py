"""The complaints pages of the portal (being built)."""

from __future__ import annotations

from typing import Any

PAGES: list[Any] = []
