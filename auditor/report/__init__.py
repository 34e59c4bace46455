"""Operators reports."""
