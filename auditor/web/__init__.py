"""The daemon's live web page: the class overview (and the class's progress when students build the
lab), a page a lab, the latest audits and the grades as JSON, probes.

Its names are imported on first use (auditor/common/lazy.py): no command but the daemon and the demo
imports the web server."""

from typing import TYPE_CHECKING

from auditor.common.lazy import lazy_names

if TYPE_CHECKING:
    from auditor.web.app import create_app
    from auditor.web.auth import page_token
    from auditor.web.server import WebServer, open_page
    from auditor.web.view import ClassBoard, ClassView
else:
    __getattr__ = lazy_names(
        __name__,
        {
            "auditor.web.app": ("create_app",),
            "auditor.web.auth": ("page_token",),
            "auditor.web.server": ("WebServer", "open_page"),
            "auditor.web.view": ("ClassBoard", "ClassView"),
        },
    )

__all__ = ["ClassBoard", "ClassView", "WebServer", "create_app", "open_page", "page_token"]
