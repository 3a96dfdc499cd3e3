"""runlog.aws parses the pages a refresh reads by the thousand (ListRuns, ListRunsInBatch)
with a walker made once from the output shape: it must give what botocore's own rest-json
parser gives, value for value, for any answer, hostile ones included (wrong JSON types,
huge strings, control characters, nulls, unknown members), or leave it to botocore."""

from __future__ import annotations

import json

import botocore.session
import pytest
from botocore.parsers import RestJSONParser
from hypothesis import given, settings
from hypothesis import strategies as st

from runlog import aws

MODEL = botocore.session.get_session().get_service_model("omics")

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
    | st.text(alphabet=st.characters(max_codepoint=0x1f), max_size=5) | st.just("x" * 100_000)
    | st.sampled_from(["2026-11-26T10:00:00.123Z", "2026-11-26T10:00:00+02:00", "1700000000", "not a time"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


def _item(shape) -> st.SearchStrategy:
    """Items with each member of the shape absent, plausible, or any JSON value at all."""
    plausible = {"string": st.text(max_size=20), "integer": st.integers(0, 10**6), "timestamp":
                 st.sampled_from(["2026-11-26T10:00:00.123Z", "2026-11-26T10:00:00Z"])}
    members = {name: st.one_of(plausible.get(member.type_name, ANY_JSON), ANY_JSON)
               for name, member in shape.members.items()}
    return st.fixed_dictionaries({}, optional={**members, "unknownMember": ANY_JSON})


def _pages(operation: str, key: str) -> st.SearchStrategy:
    item = _item(MODEL.operation_model(operation).output_shape.members[key].member)
    return st.fixed_dictionaries({key: st.lists(st.one_of(item, st.just(None)), max_size=6) | ANY_JSON},
                                 optional={"nextToken": st.text(max_size=10) | ANY_JSON})


def _parse(parser, operation: str, page) -> tuple[str, object]:
    response = {"status_code": 200, "headers": {"content-type": "application/json", "x-amzn-requestid": "r1"},
                "body": json.dumps(page).encode()}
    try:
        return "value", parser.parse(response, MODEL.operation_model(operation).output_shape)
    except Exception as exc:  # the same failure on both sides counts as the same answer
        return "error", type(exc).__name__


def _parsers():
    factory = aws._parser_factory()
    factory.set_parser_defaults(timestamp_parser=aws.parse_timestamp)
    return factory.create_parser("rest-json"), RestJSONParser(timestamp_parser=aws.parse_timestamp)


@pytest.mark.parametrize(("operation", "key"), [("ListRuns", "items"), ("ListRunsInBatch", "runs")])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_page_is_parsed_as_botocore_parses_it(operation, key, data):
    ours, botocores = _parsers()
    page = data.draw(_pages(operation, key))
    assert _parse(ours, operation, page) == _parse(botocores, operation, page)


def test_a_plain_page_goes_through_the_walker_and_other_answers_do_not():
    ours, botocores = _parsers()
    assert type(ours).__name__ == "PagesParser"
    page = {"items": [{"id": "1234567", "status": "COMPLETED", "priority": 5, "creationTime": "2026-11-26T10:00:00Z",
                       "name": "a\x00b\u2028"}], "nextToken": "100"}
    kind, parsed = _parse(ours, "ListRuns", page)
    assert kind == "value" and "ListRunsResponse" in ours._walkers  # the walker was made and used
    assert parsed == _parse(botocores, "ListRuns", page)[1]
    assert parsed["items"][0]["creationTime"].isoformat() == "2026-11-26T10:00:00+00:00"
    assert _parse(ours, "GetRun", {"id": "1", "status": "RUNNING"}) == _parse(botocores, "GetRun",
                                                                             {"id": "1", "status": "RUNNING"})
    assert "GetRunResponse" not in ours._walkers


def test_runlogs_clients_page_list_runs_as_a_plain_botocore_client(emulator):
    from botocore.config import Config

    settings_ = aws.AwsSettings(region="us-west-2", endpoint_url=emulator.endpoint_url)
    ours = aws.client(settings_, "omics")
    assert type(ours._endpoint._response_parser_factory.create_parser("rest-json")).__name__ == "PagesParser"
    plain = botocore.session.get_session().create_client(
        "omics", region_name="us-west-2", endpoint_url=emulator.endpoint_url,
        aws_access_key_id="x", aws_secret_access_key="x", config=Config(inject_host_prefix=False))
    a, b = ours.list_runs(maxResults=5), plain.list_runs(maxResults=5)
    a.pop("ResponseMetadata"), b.pop("ResponseMetadata")
    assert a == b and a["items"] and any(hasattr(v, "isoformat") for v in a["items"][0].values())
