"""The monitoring dashboard: at ``/`` of the API and as ``loopml monitor --html OUT``."""

from __future__ import annotations

from loopml.dashboard.page import dashboard_data, render_dashboard
from loopml.dashboard.router import router

__all__ = ["dashboard_data", "render_dashboard", "router"]
