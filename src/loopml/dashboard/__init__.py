"""The monitoring dashboard: one HTML page over :meth:`loopml.project.Monitor.dashboard`."""

from __future__ import annotations

from loopml.dashboard.page import dashboard_data, render_dashboard
from loopml.dashboard.router import dashboard_router

__all__ = ["dashboard_data", "dashboard_router", "render_dashboard"]
