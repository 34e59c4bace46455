"""The daemon's live web page: the class overview, a page a lab, the latest audits as JSON, probes."""

from auditor.web.app import create_app
from auditor.web.auth import page_token
from auditor.web.server import WebServer, open_page
from auditor.web.view import ClassView

__all__ = ["ClassView", "WebServer", "create_app", "open_page", "page_token"]
