"""The one pattern for a HealthOmics run ARN, and what runlog reads out of one.

arn:PARTITION:omics:REGION:ACCOUNT:run/ID, with PARTITION aws, aws-cn, aws-us-gov, ...;
REGION is never empty and ACCOUNT is 12 digits. The whole text must match (a trailing
newline or anything else after the id is not an ARN)."""

from __future__ import annotations

import re
from typing import NamedTuple

RUN_ARN_RE = re.compile(r"arn:aws[a-z-]*:omics:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):run/(?P<run_id>\d+)")


class RunArn(NamedTuple):
    region: str
    account: str
    run_id: str


def parse_run_arn(text: object) -> RunArn | None:
    """The parts of a run ARN, or None when `text` is not one."""
    if not isinstance(text, str):
        return None
    found = RUN_ARN_RE.fullmatch(text)
    return RunArn(found["region"], found["account"], found["run_id"]) if found else None


def is_run_arn(text: object) -> bool:
    return parse_run_arn(text) is not None


BATCH_ARN_RE = re.compile(r"arn:aws[a-z-]*:omics:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):runBatch/(?P<batch_id>\d+)")


def batch_id_of_arn(text: object) -> str | None:
    """The batch id in a run batch's ARN (arn:...:omics:REGION:ACCOUNT:runBatch/ID), or None."""
    if not isinstance(text, str):
        return None
    found = BATCH_ARN_RE.fullmatch(text)
    return found["batch_id"] if found else None


# Where any HealthOmics ARN (run, runBatch, workflow, ...) lives: its region and account.
ARN_PLACE_RE = re.compile(r"arn:aws[a-z-]*:omics:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):")


def asked_elsewhere(arn: object, region: object, operation: str, what: str) -> str | None:
    """Why a ResourceNotFoundException (or another resource's answer) from `operation` in
    `region` says nothing about the run or batch `arn` names: the ARN's region is another
    (the service there has no such id, or another resource under it). One line naming both
    regions and the fix; None when the regions agree or either is unknown."""
    found = ARN_PLACE_RE.match(arn) if isinstance(arn, str) else None
    if found is None or not isinstance(region, str) or not region or found["region"] == region:
        return None
    home = found["region"]
    return (f"{operation} in {region} does not know {what}, which is in {home} (its ARN): nothing recorded "
            f"(ask {home}: leave out the `region` or `profile` that says {region}, or give `region` {home})")
