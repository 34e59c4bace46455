"""The lab's resources, one kind a module: auditor/resources/base.py says what a kind declares."""
