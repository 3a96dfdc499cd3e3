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
