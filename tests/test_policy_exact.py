"""Properties of the exact comparison (hypothesis), on generated policies of the lab's kinds.

1. A policy compared with itself is the same: effect none, no witness.
2. compare(a, b) mirrors compare(b, a): widened one way is narrowed the other, and the witnesses swap.
3. A witness is allowed by exactly the side it names, by IAM's evaluator.
4. Adding a Deny never widens (never widened or changed).
5. Removing a condition never narrows.

The generated policies come from tests/test_policy_properties.py: real actions from the catalogue,
service and prefix wildcards, the lab's resources, conditions of the kinds IAM has, Allow and Deny.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_policy_properties import documents, permission_statements, trust_statements

from auditor.domain.model import Effect, Side, Witness
from auditor.iam.evaluate import allows
from auditor.policy import (
    PolicyDiff,
    compare_permissions,
    compare_trust,
    parse_policy,
    policy_engine,
    witness_request,
)
from conftest import examples

Doc = dict[str, Any]

SETTINGS = settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
MIRROR = {
    Effect.NONE: Effect.NONE,
    Effect.WIDENED: Effect.NARROWED,
    Effect.NARROWED: Effect.WIDENED,
    Effect.CHANGED: Effect.CHANGED,
}
ROLE = "arn:aws:iam::222222222222:role/LambdaS3ListBuckets"
ENGINE = policy_engine()


def compared(expected: Doc, actual: Doc, *, trust: bool) -> PolicyDiff:
    if trust:
        return compare_trust(ENGINE, parse_policy(expected), parse_policy(actual), role_arn=ROLE)
    return compare_permissions(ENGINE, [parse_policy(expected)], [parse_policy(actual)])


def witnesses(diff: PolicyDiff) -> list[Witness]:
    return [w for w in (diff.wider, diff.narrower) if w is not None]


kinds = st.sampled_from([False, True])


def statements_of(trust: bool, effect: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Doc]:
    return trust_statements(effect) if trust else permission_statements(effect)


@st.composite
def a_document(draw: st.DrawFn, trust: bool) -> Doc:
    return draw(documents(statements_of(trust)))


@SETTINGS
@given(data=st.data(), trust=kinds)
def test_a_policy_is_the_same_as_itself(data: st.DataObject, trust: bool) -> None:
    doc = data.draw(a_document(trust))
    diff = compared(doc, copy.deepcopy(doc), trust=trust)
    assert diff.effect is Effect.NONE
    assert witnesses(diff) == []


@SETTINGS
@given(data=st.data(), trust=kinds)
def test_comparing_the_other_way_mirrors_the_result(data: st.DataObject, trust: bool) -> None:
    a, b = data.draw(a_document(trust)), data.draw(a_document(trust))
    forth, back = compared(a, b, trust=trust), compared(b, a, trust=trust)
    # A side past the time limit is "could not be decided in time", an honest answer that mirrors
    # nothing: on a loaded machine one direction may finish within the limit and the other not.
    assume(forth.decided and back.decided)
    assert back.effect is MIRROR[forth.effect], (forth.message, back.message)
    assert {w.allowed_by for w in witnesses(forth)} == {
        Side.ACTUAL if w.allowed_by is Side.EXPECTED else Side.EXPECTED for w in witnesses(back)
    }


@SETTINGS
@given(data=st.data(), trust=kinds)
def test_a_witness_is_allowed_by_exactly_the_side_it_names(data: st.DataObject, trust: bool) -> None:
    expected, actual = data.draw(a_document(trust)), data.draw(a_document(trust))
    diff = compared(expected, actual, trust=trust)
    for witness in witnesses(diff):
        allowing, refusing = (actual, expected) if witness.allowed_by is Side.ACTUAL else (expected, actual)
        request = witness_request(witness)
        assert allows([parse_policy(allowing)], request), witness
        assert not allows([parse_policy(refusing)], request), witness


@SETTINGS
@given(data=st.data(), trust=kinds)
def test_adding_a_deny_never_widens(data: st.DataObject, trust: bool) -> None:
    doc = data.draw(a_document(trust))
    added = data.draw(st.lists(statements_of(trust, st.just("Deny")), min_size=1, max_size=2))
    diff = compared(doc, {**doc, "Statement": doc["Statement"] + added}, trust=trust)
    assert diff.effect in (Effect.NONE, Effect.NARROWED), diff.message


@SETTINGS
@given(data=st.data(), trust=kinds)
def test_removing_a_condition_never_narrows(data: st.DataObject, trust: bool) -> None:
    doc = data.draw(a_document(trust))
    conditioned = [i for i, s in enumerate(doc["Statement"]) if s.get("Condition") and s["Effect"] == "Allow"]
    if not conditioned:
        return
    index = data.draw(st.sampled_from(conditioned))
    loosened = copy.deepcopy(doc)
    del loosened["Statement"][index]["Condition"]
    diff = compared(doc, loosened, trust=trust)
    assert diff.effect in (Effect.NONE, Effect.WIDENED), diff.message
