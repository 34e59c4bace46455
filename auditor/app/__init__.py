"""The application: the context of a command, and the service that plans, applies, tears down, audits and records labs."""
