"""The Jinja environment the portal renders with (autoescaped), and its filters."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from hub.portal.once import once_field

TEMPLATE_DIRECTORY = Path(__file__).resolve().parents[1] / "templates"


def moment(value: datetime | date | None) -> str:
    """A time as pages show it: UTC, to the minute (a date as it is)."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def _configure(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters["moment"] = moment
    engine.engine.globals["once_field"] = once_field
    engine.engine.trim_blocks = True
    engine.engine.lstrip_blocks = True


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(
        directory=TEMPLATE_DIRECTORY, engine=JinjaTemplateEngine, engine_callback=_configure
    )
