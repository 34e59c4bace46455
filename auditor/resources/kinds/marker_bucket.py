"""The marker bucket in the destination account: the invoke check's proof that the listing crossed accounts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from auditor.common.errors import is_not_found
from auditor.domain.actual import ActualBucket, ActualLab
from auditor.domain.model import Action, Finding, Step
from auditor.domain.spec import (
    MARKER_BUCKET_KIND,
    BucketSpec,
    ExpectedLab,
    LabShape,
    ResourceKey,
    render_marker_bucket,
)
from auditor.resources.base import (
    ANY_LAB,
    READ,
    Clients,
    Facts,
    Grant,
    Kind,
    Part,
    Scope,
    Sleep,
    call,
    missing,
)

_MARKER_BUCKET_ARN = f"arn:aws:s3:::{ANY_LAB.marker_bucket.name}"
MARKER_BUCKET = Scope("MarkerBucket", (_MARKER_BUCKET_ARN,))
MARKER_OBJECTS = Scope("MarkerBucketObjects", (f"{_MARKER_BUCKET_ARN}/*",))


def bucket_arn(spec: BucketSpec) -> str:
    return f"arn:aws:s3:::{spec.name}"


def collect_bucket(s3: Any, name: str) -> ActualBucket:
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as error:
        if is_not_found(error):
            return ActualBucket(name, exists=False)
        raise
    return ActualBucket(name, exists=True)


def delete_bucket(s3: Any, name: str) -> None:
    # The marker bucket is created empty; anything a student put into it goes with it.
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        objects = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if objects:
            s3.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
    s3.delete_bucket(Bucket=name)


class MarkerBucket(Kind):
    name = MARKER_BUCKET_KIND
    apply_rank = (3, 0)
    removal_rank = (3, 0)
    calls: ClassVar = (
        call(
            "s3:HeadBucket",
            MARKER_BUCKET,
            *READ,
            action="s3:ListBucket",
            used_by="marker_bucket.collect_bucket",
        ),
        call("s3:CreateBucket", MARKER_BUCKET, Part.PROVISION, used_by="marker_bucket.apply"),
        call("s3:PutBucketTagging", MARKER_BUCKET, Part.PROVISION, used_by="marker_bucket.apply"),
        call(
            "s3:ListObjectVersions",
            MARKER_BUCKET,
            Part.TEARDOWN,
            action="s3:ListBucketVersions",
            used_by="marker_bucket.delete_bucket (paginator)",
        ),
        call(
            "s3:DeleteObjects",
            MARKER_OBJECTS,
            Part.TEARDOWN,
            action="s3:DeleteObject",
            also=[Grant("s3:DeleteObjectVersion", MARKER_OBJECTS)],
            used_by="marker_bucket.delete_bucket: whatever a student put into the marker bucket, by version",
        ),
        call("s3:DeleteBucket", MARKER_BUCKET, Part.TEARDOWN, used_by="marker_bucket.delete_bucket"),
    )

    def render(self, shape: LabShape) -> Mapping[ResourceKey, Any]:
        return render_marker_bucket(shape)

    def collect(
        self, clients: Clients, expected: ExpectedLab, actual: ActualLab, *, for_teardown: bool
    ) -> Mapping[ResourceKey, Any]:
        spec = expected.marker_bucket
        return {spec.key: collect_bucket(clients.client(spec.account_id, "s3"), spec.name)}

    def compare(self, expected: ExpectedLab, actual: ActualLab, facts: Facts) -> list[Finding]:
        spec = expected.marker_bucket
        if actual.marker_bucket.exists:
            return []
        subject = self.subject(spec.account_id, spec.name, spec.name)
        return [missing(subject, bucket_arn(spec), f"marker bucket {spec.name}")]

    def managed(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        spec = expected.marker_bucket
        return [Step(self.name, spec.account_id, spec.name, spec.name, Action.NO_CHANGE)]

    def apply(self, step: Step, clients: Clients, expected: ExpectedLab, sleep: Sleep) -> None:
        bucket = expected.marker_bucket
        s3 = clients.client(bucket.account_id, "s3")
        arguments: dict[str, Any] = {"Bucket": bucket.name}
        if bucket.region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": bucket.region}
        try:
            s3.create_bucket(**arguments)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise
        s3.put_bucket_tagging(Bucket=bucket.name, Tagging={"TagSet": expected.tag_list})

    def removals(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        spec = expected.marker_bucket
        if not actual.marker_bucket.exists:
            return []
        return [Step(self.name, spec.account_id, spec.name, spec.name, Action.DELETE)]

    def delete(self, step: Step, clients: Clients) -> None:
        delete_bucket(clients.client(step.account_id, "s3"), step.name)


KIND = MarkerBucket()
