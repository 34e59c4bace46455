"""A near name (auditor/domain/near_names.py): case, a missing, extra, replaced or swapped letter."""

from __future__ import annotations

import pytest

from auditor.domain.near_names import near_name

GUIDE_ROLE = "LambdaS3ListBuckets"


@pytest.mark.parametrize(
    "found",
    [
        "lambdas3listbuckets",  # case
        "LambdaS3ListBucket",  # a letter missing
        "LambdaS3ListBuckets2",  # a letter more
        "LambdaS3ListBukcets",  # two letters swapped
        "Lambda_S3_List_Buckets",  # separators are no letters
        "lambdaS3ListBucketz",  # a letter replaced, with another case
    ],
)
def test_a_name_as_people_mistype_it_is_near(found: str) -> None:
    assert near_name(GUIDE_ROLE, ["OrganizationAccountAccessRole", found, "Admin"]) == found


@pytest.mark.parametrize(
    "other",
    ["lambdalists3role", "Lambda-Assume-Roles", "S3ListBuckets", "LambdaS3ListBucketsPolicyRole", GUIDE_ROLE],
)
def test_another_name_or_the_name_itself_is_not_near(other: str) -> None:
    assert near_name(GUIDE_ROLE, [other]) is None


def test_a_short_name_allows_one_slip_only() -> None:
    assert near_name("Lambda-Role", ["LambdaRol"]) == "LambdaRol"
    assert near_name("Lambda-Role", ["LambdRol"]) is None


def test_the_nearest_wins_and_ties_go_to_name_order() -> None:
    assert near_name(GUIDE_ROLE, ["LambdaS3ListBucket", "lambdas3listbuckets"]) == "lambdas3listbuckets"
    assert near_name(GUIDE_ROLE, ["LambdaS3ListBucketz", "LambdaS3ListBucketa"]) == "LambdaS3ListBucketa"
