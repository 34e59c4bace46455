"""The actual state's merge: what kinds read at once adds up as if they had read one after another."""

from __future__ import annotations

from dataclasses import replace

from auditor.domain.actual import ActualBucket, ActualLab, merged
from auditor.domain.config import LabSettings
from auditor.domain.spec import render
from auditor.resources.registry import REGISTRY
from conftest import pair


def start() -> ActualLab:
    return ActualLab.before_collection(render(pair(1), LabSettings()))


def test_versions_that_change_different_parts_of_one_role_each_keep_their_part() -> None:
    base = start()
    role = base.destination_role
    inline = base.with_role(replace(role, inline_policies={"Policy": {"Version": "2012-10-17"}}))
    managed = base.with_role(replace(role, managed_policies={"arn:aws:iam::aws:policy/X": None}))
    bucket = replace(base, marker_bucket=ActualBucket(base.marker_bucket.name, exists=True))
    result = merged(base, [inline, managed, bucket])
    assert result.destination_role.inline_policies == {"Policy": {"Version": "2012-10-17"}}
    assert result.destination_role.managed_policies == {"arn:aws:iam::aws:policy/X": None}
    assert result.marker_bucket.exists
    assert result.origin_role is base.origin_role


def test_the_later_version_wins_a_field_both_change_and_dict_keys_add_up() -> None:
    base = start()
    first = replace(base, more={"a": 1}, marker_bucket=ActualBucket("first", True))
    second = replace(base, more={"b": 2}, marker_bucket=ActualBucket("second", True))
    result = merged(base, [first, second])
    assert result.marker_bucket.name == "second"
    assert result.more == {"a": 1, "b": 2}
    assert merged(base, []) is base


def test_kinds_that_read_what_another_collected_come_in_a_later_stage() -> None:
    stages = [[kind.name for kind in stage] for stage in REGISTRY.collection_stages()]
    assert sorted(name for stage in stages for name in stage) == sorted(REGISTRY.names())
    where = {name: number for number, stage in enumerate(stages) for name in stage}
    for kind in REGISTRY:
        assert all(where[after] < where[kind.name] for after in kind.collects_after), kind.name
    assert where["inline_policy"] == where["managed_policy"] == 1 and where["role"] == 0
