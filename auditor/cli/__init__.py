"""Delivery on the terminal: every command, its options and its renderers."""
