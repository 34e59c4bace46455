"""lab-auditor: provision, audit and tear down the cross-account Lambda lab for whole classes."""

__version__ = "0.1.0"
