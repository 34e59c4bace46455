"""The daemon's live web page: the class overview (and the class's progress when students build the
lab), a page a lab, the latest audits and the grades as JSON, probes."""

from auditor.web.app import create_app
from auditor.web.auth import page_token
from auditor.web.server import WebServer, open_page
from auditor.web.view import ClassBoard, ClassView

__all__ = ["ClassBoard", "ClassView", "WebServer", "create_app", "open_page", "page_token"]
