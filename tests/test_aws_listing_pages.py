"""runlog.aws parses S3's listings (ListObjectsV2 pages, 1 000 objects each, read by the
hundred when submit-batch lists a cohort's inputs) with each Object's steps planned once: it
must give what botocore's own rest-xml parser gives, value for value, for any page, hostile
ones included (members missing, given twice, empty, nested, unknown, with or without S3's
namespace), and the same error when botocore fails."""

from __future__ import annotations

from xml.sax.saxutils import escape

import boto3
import botocore.session
import pytest
from botocore.parsers import RestXMLParser
from hypothesis import given, settings
from hypothesis import strategies as st

from runlog import aws

MODEL = botocore.session.get_session().get_service_model("s3")
OUTPUT = MODEL.operation_model("ListObjectsV2").output_shape
NAMESPACE = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), min_codepoint=0x20), max_size=12)
VALUES = {
    "Key": TEXT,
    "LastModified": st.sampled_from(["2026-11-26T10:00:00.000Z", "2026-11-26T10:00:00Z", "2026-11-26T10:00:00+02:00",
                                     "Thu, 26 Nov 2026 10:00:00 GMT", "1700000000", "not a time", ""]),
    "ETag": st.sampled_from(['"0123abcd"', "&quot;x&quot;", ""]).map(lambda v: v.replace('"', "&quot;")),
    "Size": st.sampled_from(["0", "12", "-3", "99999999999", "1.5", "x", ""]),
    "StorageClass": st.sampled_from(["STANDARD", "GLACIER", ""]),
    "ChecksumAlgorithm": st.sampled_from(["CRC32", "SHA256"]),
    "ChecksumType": st.sampled_from(["FULL_OBJECT", ""]),
    "Unknown": TEXT,
}


@st.composite
def element(draw, name: str) -> str:
    if name == "Owner":
        inner = "".join(f"<{tag}>{escape(draw(TEXT))}</{tag}>"
                        for tag in draw(st.lists(st.sampled_from(["ID", "DisplayName"]), max_size=3)))
        return f"<Owner>{inner}</Owner>"
    if name == "RestoreStatus":
        return ("<RestoreStatus><IsRestoreInProgress>" + draw(st.sampled_from(["true", "false"]))
                + "</IsRestoreInProgress></RestoreStatus>")
    value = draw(VALUES[name])
    if name not in ("ETag",):
        value = escape(value)
    return f"<{name}/>" if draw(st.integers(0, 9)) == 0 else f"<{name}>{value}</{name}>"


@st.composite
def listing(draw) -> bytes:
    names = list(VALUES) + ["Owner", "RestoreStatus"]
    items = []
    for _ in range(draw(st.integers(0, 5))):
        tags = draw(st.lists(st.sampled_from(names), max_size=10))  # any order, some twice
        items.append("<Contents>" + "".join(draw(element(tag)) for tag in tags) + "</Contents>")
    namespace = draw(st.sampled_from([NAMESPACE, ""]))
    head = ("<Name>b</Name><Prefix>crams/</Prefix><KeyCount>" + str(len(items)) + "</KeyCount><MaxKeys>1000</MaxKeys>"
            "<IsTruncated>" + draw(st.sampled_from(["true", "false"])) + "</IsTruncated>"
            "<StartAfter>crams/S0</StartAfter><EncodingType>url</EncodingType>")
    if draw(st.booleans()):
        head += "<NextContinuationToken>t1</NextContinuationToken>"
    return (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult{namespace}>{head}'
            + "".join(items) + "</ListBucketResult>").encode("utf-8")


def parsers():
    factory = aws._parser_factory()
    factory.set_parser_defaults(timestamp_parser=aws.parse_timestamp)
    return factory.create_parser("rest-xml"), RestXMLParser(timestamp_parser=aws.parse_timestamp)


def plain(value):
    """The parsed page with any XML element botocore left in it (a member given twice) as its
    tag and text: elements are compared by what they hold, not by identity."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if hasattr(value, "tag") and hasattr(value, "text"):
        return ("element", value.tag, value.text, [plain(child) for child in value])
    return value


def parse(parser, body: bytes):
    response = {"status_code": 200, "headers": {"content-type": "application/xml", "x-amz-request-id": "r1",
                                                "x-amz-request-charged": "requester"}, "body": body}
    try:
        return "value", plain(parser.parse(response, OUTPUT))
    except Exception as exc:  # the same failure on both sides counts as the same answer
        return "error", type(exc).__name__


@settings(max_examples=400, deadline=None)
@given(listing())
def test_a_listing_page_parses_as_botocore_parses_it(body):
    ours, botocores = parsers()
    assert parse(ours, body) == parse(botocores, body)


def test_the_planned_parse_is_the_one_taken_for_objects():
    ours, botocores = parsers()
    body = (f'<ListBucketResult{NAMESPACE}><IsTruncated>false</IsTruncated><Contents><Key>a</Key>'
            '<LastModified>2026-11-26T10:00:00.000Z</LastModified><ETag>&quot;e1&quot;</ETag><Size>3</Size>'
            '<StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>').encode()
    assert parse(ours, body) == parse(botocores, body)
    assert any(shape is OUTPUT.members["Contents"].member for shape, _ in ours._plans.values())
    assert ours._tags  # the namespace was taken off each tag once
    item = parse(ours, body)[1]["Contents"][0]
    assert list(item) == ["Key", "LastModified", "ETag", "Size", "StorageClass"]  # the shape's order
    assert item["ETag"] == '"e1"' and item["Size"] == 3


def test_listing_moto_through_runlogs_client_gives_what_boto3_gives(s3_server):
    s3_server.create_bucket(Bucket="pages")
    keys = ["crams/S1.cram", "crams/sp ace+plus.cram", "crams/ünï©ødé.cram", "crams/a%2Fb.cram", "crams/x&y<z>.cram"]
    for key in keys:
        s3_server.put_object(Bucket="pages", Key=key, Body=key.encode(), ChecksumAlgorithm="SHA256")
    settings_ = aws.AwsSettings(None, "us-east-1", None)
    ours = aws.client(settings_, "s3", sess=aws.session(settings_))
    plain = boto3.client("s3", endpoint_url=s3_server.meta.endpoint_url, region_name="us-east-1")
    for extra in ({}, {"MaxKeys": 2}, {"FetchOwner": True}, {"StartAfter": "crams/S1.cram"}):
        mine = ours.list_objects_v2(Bucket="pages", Prefix="crams/", **extra)
        theirs = plain.list_objects_v2(Bucket="pages", Prefix="crams/", **extra)
        for page in (mine, theirs):
            page.pop("ResponseMetadata")
        assert mine == theirs
        listed = [item["Key"] for item in mine["Contents"]]
        assert listed == sorted(listed) and set(listed) <= set(keys)
        if not extra:
            assert listed == sorted(keys) and all(item["ETag"] and item["Size"] for item in mine["Contents"])


@pytest.mark.parametrize("body", [
    b"<ListBucketResult><Contents><Key>a</Key><Key>b</Key></Contents></ListBucketResult>",
    b"<ListBucketResult><Contents><Key>a</Key><Size>not a number</Size></Contents></ListBucketResult>",
    b"<ListBucketResult><Contents>text<Key>a</Key>tail</Contents></ListBucketResult>",
    b"<ListBucketResult><Contents></Contents><Contents/></ListBucketResult>",
], ids=["key-twice", "bad-size", "mixed-text", "empty-items"])
def test_odd_items_parse_or_fail_as_botocore_does(body):
    ours, botocores = parsers()
    assert parse(ours, body) == parse(botocores, body)
