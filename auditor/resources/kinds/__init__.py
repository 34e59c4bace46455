"""One module a kind of resource; each defines `KIND`, which the registry finds (see base.py)."""
