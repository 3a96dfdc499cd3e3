"""batch.MemberPages (issue 14): a refresh builds and encodes a page of member records
without the per-member checks for floats (fastjson.dumps_floatless) when it has proven that
no float can be in them. What must hold, on hostile items and run settings: the bytes, the
address and the schema's verdict are those of the reference path (batch._member, encoded by
record.canonical_json, checked by record.schema_errors), and what the reference refuses
(NaN in a setting) is refused too."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recordfactory import make_record
from runlog import batch as batches
from runlog import record as rec
from runlog.errors import LedgerError
from runlog.ledger import Ledger

ADDRESS = "ab" * 32
DEFAULT = {"workflowId": "1234567", "roleArn": "arn:aws:iam::123456789012:role/OmicsRole",
           "outputUri": "s3://bucket/out/", "parameters": {"ref": "s3://bucket/ref.fa"}}


def _outline(default: dict, inline: list | None = None) -> dict:
    """A submitted batch's outline (Ledger.batch_outline) as _member reads it."""
    base = make_record()
    runs = {"inlineSettings": inline} if inline is not None else {"s3UriSettings": "s3://bucket/settings.json"}
    return {**{k: base[k] for k in ("format", "created", "runlog_version", "git", "caller", "aws", "warnings")},
            "kind": "batch", "parameters": {"source": "inline", "argument": "{}"},
            "request": {"batchName": "cohort", "requestId": "r-1", "defaultRunSetting": default,
                        "batchRunSettings": runs},
            "outcome": {"status": "submitted", "response": {"id": "8100001", "uuid": "u-1",
                                                            "arn": "arn:aws:omics:us-west-2:1:runBatch/8100001"}}}


def _reference(outline: dict, item: dict, texts: dict[str, str]) -> tuple[str, bytes] | type:
    """(address, body) of the member as record_members made it before MemberPages, encoded by
    the json module; the exception's type when that path refuses it."""
    try:
        own = texts.get(item.get("runSettingId") or "")  # an id that is no text: TypeError on both paths
        member = batches._member(outline, ADDRESS, item, json.loads(own) if own is not None else None)
        if rec.schema_errors(member):
            return LedgerError
        body = rec.canonical_json(member)
    except (ValueError, TypeError) as exc:
        return type(exc)
    return rec.sha256_hex(body), body


def _encoded(outline: dict, item: dict, texts: dict[str, str]) -> tuple[str, bytes] | type:
    try:
        ((_, body, address, _),) = batches.MemberPages(outline, ADDRESS).encode(
            [item], lambda ids: {i: texts[i] for i in ids if i in texts})
    except (ValueError, TypeError, LedgerError) as exc:
        return type(exc)
    return address, body


_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.text(max_size=12)
            | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e-05, 1e16, 1e22, -0.0, 2.5, 5e-324]))
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
_ID = st.sampled_from(["S1", "S2", "S3", ""])
_ITEM_VALUE = st.one_of(st.text(max_size=20), st.none(), st.integers(), st.floats(), st.booleans(),
                        st.lists(st.text(max_size=3), max_size=2), st.dictionaries(st.text(max_size=3), st.text(max_size=3),
                                                                                  max_size=2))


@st.composite
def _items(draw) -> dict:
    item: dict = {}
    for key in ("runSettingId", "runId", "runInternalUuid", "runArn", "submissionStatus", "submissionFailureReason",
                "submissionFailureMessage", "batchId"):
        if draw(st.booleans()):
            item[key] = draw(_ID) if key == "runSettingId" and draw(st.booleans()) else draw(_ITEM_VALUE)
    if draw(st.booleans()):
        item["runId"] = draw(st.text(alphabet="0123456789", min_size=1, max_size=8))
    return item


@st.composite
def _setting_texts(draw) -> dict[str, str]:
    """Run settings as the ledger's temporary table holds them: JSON text (json.dumps: NaN and
    the infinities written as the json module writes them, which it also reads back)."""
    texts = {}
    for setting_id in draw(st.lists(_ID.filter(bool), unique=True, max_size=3)):
        setting = {"runSettingId": setting_id, **draw(st.dictionaries(
            st.sampled_from(["name", "parameters", "priority", "runTags", "outputUri", "cacheId"]), _JSON, max_size=3))}
        if draw(st.booleans()):
            setting["parameters"] = draw(st.dictionaries(st.text(max_size=5), _JSON, max_size=3))
        texts[setting_id] = json.dumps(setting)
    return texts


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=_items(), texts=_setting_texts(),
       extra=st.dictionaries(st.sampled_from(["priority", "storageCapacity", "name"]), _SCALARS, max_size=2),
       inline=st.booleans())
def test_members_are_the_reference_members_byte_for_byte_on_hostile_items_and_settings(item, texts, extra, inline):
    default = {**DEFAULT, **extra}
    if inline:
        settings_list = [json.loads(text) for text in texts.values()]
        try:
            outline = json.loads(json.dumps(_outline(default, settings_list)))
        except ValueError:
            return
        assert _encoded(outline, item, {}) == _reference(outline, item, texts)
    else:
        outline = json.loads(json.dumps(_outline(default)))
        assert _encoded(outline, item, texts) == _reference(outline, item, texts)


@pytest.mark.parametrize("value", [1e-05, 1e16, 0.1, 30.0, float("nan"), 2**64, -(2**63) - 1])
def test_a_float_or_a_wide_integer_in_a_setting_gives_the_json_modules_bytes_or_its_refusal(value):
    outline = _outline(DEFAULT)
    texts = {"S1": json.dumps({"runSettingId": "S1", "parameters": {"x": value, "n": 3}})}
    item = {"runSettingId": "S1", "runId": "1", "runInternalUuid": "u", "runArn": "a", "submissionStatus": "SUCCESS"}
    reference = _reference(outline, item, texts)
    assert _encoded(outline, item, texts) == reference
    if value != value:  # NaN: the json module refuses to write it, and so does the refresh
        assert reference is ValueError
    else:
        assert isinstance(reference, tuple) and json.loads(reference[1])["request"]["parameters"]["x"] == value


def test_a_float_in_the_default_setting_is_written_as_the_json_module_writes_it():
    outline = _outline({**DEFAULT, "parameters": {"threshold": 1e-05, "ploidy": 2.0}})
    item = {"runSettingId": "S9", "runId": "7", "submissionStatus": "SUCCESS"}
    address, body = _encoded(outline, item, {})
    assert b'"threshold":1e-05' in body and b'"ploidy":2.0' in body
    assert (address, body) == _reference(outline, item, {})


def test_a_member_that_breaks_the_schema_is_refused_before_it_is_handed_over():
    outline = _outline(DEFAULT)
    item = {"runSettingId": "S1", "runId": 12345, "submissionStatus": "SUCCESS"}  # an id that is no text
    with pytest.raises(LedgerError, match="breaks the schema"):
        batches.MemberPages(outline, ADDRESS).encode([item], lambda ids: {})
    assert Ledger.encode_records  # the same check as every record's


def test_the_checks_for_floats_are_skipped_only_when_no_float_can_be_in_the_member():
    texts = {"S1": json.dumps({"runSettingId": "S1", "parameters": {"n": 3, "big": 2**70}}),
             "S2": json.dumps({"runSettingId": "S2", "parameters": {"x": 0.5}}),
             "S3": '{"runSettingId": "S3", "parameters": {"x": 1E3}}'}  # a float without "." in its text
    items = [{"runSettingId": "S1", "runId": "1", "runArn": "a"}, {"runSettingId": "S2", "runId": "2"},
             {"runSettingId": "S3", "runId": "3"}, {"runSettingId": "S1", "runId": "4", "extra": 1.5},
             {"runSettingId": "S9", "runId": "5"}]
    _, floatless = batches.MemberPages(_outline(DEFAULT), ADDRESS).members(
        items, lambda ids: {i: texts[i] for i in ids if i in texts})
    assert floatless == [True, False, False, False, True]
    _, floatless = batches.MemberPages(_outline({**DEFAULT, "priority": 1.0}), ADDRESS).members(
        items[:1], lambda ids: {i: texts[i] for i in ids if i in texts})
    assert floatless == [False]  # a float in the batch's own record: every member the slow way


class _Pages:
    """What status_pages asks of an omics client: a paginator over the pages given."""

    def __init__(self, pages: list[dict]):
        self._pages = pages

    def get_paginator(self, name: str):
        assert name == "list_runs"
        return self

    def paginate(self, **_):
        return iter(self._pages)


_RUN_VALUE = st.one_of(st.text(max_size=10), st.none(), st.integers(min_value=-2**70, max_value=2**70), st.booleans(),
                       st.floats(), st.sampled_from([1e-05, 1e16, 0.5]), st.datetimes(timezones=st.just(__import__(
                           "datetime").UTC)), st.lists(st.integers(), max_size=2), st.dictionaries(
                           st.text(max_size=2), st.floats(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["arn", "status", "name", "priority", "storageCapacity",
                                                 "creationTime", "startTime", "workflowId", "extra"]), _RUN_VALUE,
                                max_size=6), max_size=4))
def test_statuses_are_the_json_modules_bytes_for_hostile_listruns_items(items):
    items = [{**item, "id": str(at + 1)} for at, item in enumerate(items)]
    batch = type("Batch", (), {"batch_id": "8100001"})()
    try:
        expected = [rec.canonical_json(item) for item in items]
    except ValueError:  # NaN or an infinity: refused on both paths
        with pytest.raises(ValueError):
            list(batches.status_pages(_Pages([{"items": items}]), batch))
        return
    ((_, count, rows),) = list(batches.status_pages(_Pages([{"items": items}]), batch))
    assert count == len(items) and [body for _, _, body in rows] == expected
