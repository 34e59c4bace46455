"""The actual state by key: what kinds read at once adds up as if they had read one after another, and
a role is put back together from the entries of the kinds that read it."""

from __future__ import annotations

from dataclasses import replace

from auditor.domain.actual import ActualBucket, ActualLab, role_entries
from auditor.domain.config import LabSettings
from auditor.domain.spec import LabShape, ResourceKey, render
from auditor.resources.registry import REGISTRY
from conftest import lab_as_built, pair


def start() -> ActualLab:
    return ActualLab.before_collection(render(pair(1), LabSettings()))


def test_entries_that_kinds_read_at_once_of_one_role_each_keep_their_part() -> None:
    base = start()
    role = base.destination_role
    inline = {ResourceKey("inline_policy", role.account_id, role.name, "Policy"): {"Version": "2012-10-17"}}
    managed = {ResourceKey("managed_policy", role.account_id, role.name, "arn:aws:iam::aws:policy/X"): None}
    bucket_key = next(iter(base.of_kind("marker_bucket")))
    result = (
        base.with_entries(inline).with_entries(managed).with_entries({bucket_key: ActualBucket("b", True)})
    )
    assert result.destination_role.inline_policies == {"Policy": {"Version": "2012-10-17"}}
    assert result.destination_role.managed_policies == {"arn:aws:iam::aws:policy/X": None}
    assert result.marker_bucket.exists
    assert result.origin_role == base.origin_role


def test_the_later_reading_of_a_key_wins_and_two_labs_merge_as_a_union() -> None:
    base = start()
    key = next(iter(base.of_kind("marker_bucket")))
    first, second = (
        ActualLab({key: ActualBucket("first", True)}),
        ActualLab({key: ActualBucket("second", True)}),
    )
    assert (base | first | second).marker_bucket.name == "second"
    assert (base | ActualLab()).resources == base.resources


def test_a_role_given_whole_replaces_the_policies_read_before() -> None:
    expected = render(pair(1), LabSettings())
    built = lab_as_built(expected, "sha")
    role = built.origin_role
    changed = built.with_role(
        replace(role, inline_policies={"Other": {}}, boundary_arn="arn:b", boundary_policy={})
    )
    assert changed.origin_role.inline_policies == {"Other": {}}
    assert changed.origin_role.boundary_policy == {}
    assert changed.destination_role == built.destination_role
    assert changed.with_role(role).origin_role == role
    assert set(role_entries(role)) <= set(built.resources)


def test_the_registry_renders_the_lab_of_the_spec() -> None:
    shape = LabShape(pair(1), LabSettings(region="eu-west-1"), "arn:aws:events:eu-west-1:1:event-bus/default")
    assert REGISTRY.render(shape) == render(shape.lab, shape.settings, shape.events_target_arn)


def test_kinds_that_read_what_another_collected_come_in_a_later_stage() -> None:
    stages = [[kind.name for kind in stage] for stage in REGISTRY.collection_stages()]
    assert sorted(name for stage in stages for name in stage) == sorted(REGISTRY.names())
    where = {name: number for number, stage in enumerate(stages) for name in stage}
    for kind in REGISTRY:
        assert all(where[after] < where[kind.name] for after in kind.collects_after), kind.name
    assert where["inline_policy"] == where["managed_policy"] == 1 and where["role"] == 0
