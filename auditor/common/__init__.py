"""Plumbing that knows nothing of the lab: time, logs, the process, stopping, errors, schedules."""
