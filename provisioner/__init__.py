"""Builds and tears down a lab from the rendered spec."""
