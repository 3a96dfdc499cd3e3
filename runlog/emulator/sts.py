"""STS GetCallerIdentity on the emulator's endpoint, in the query protocol real STS speaks
(form-encoded `POST /`, XML answers), so an sts client given the same endpoint works."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from runlog.emulator.seed import ACCOUNT

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
CALLER_ARN = f"arn:aws:iam::{ACCOUNT}:user/runlog-emulator"
# Query-protocol codes and statuses for the errors the emulator's faults produce.
ERRORS = {"ThrottlingException": ("Throttling", 400), "InternalServerException": ("InternalFailure", 500)}

Reply = tuple[int, dict[str, str], bytes]


def is_sts(method: str, path: str, headers) -> bool:
    content_type = headers.get("Content-Type") or ""
    return method == "POST" and path == "/" and content_type.startswith("application/x-www-form-urlencoded")


def parse(body: bytes) -> dict[str, str]:
    """The form fields of a query-protocol request (Action, Version, ...)."""
    return {key: values[-1] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}


def answer(params: dict[str, str], account: str = ACCOUNT) -> Reply:
    """GetCallerIdentity: the emulator's user, in `account` (the seed data's by default)."""
    if params.get("Action") != "GetCallerIdentity":
        return error("InvalidAction", f"The emulator's STS does not implement {params.get('Action')!r}")
    xml = (f'<GetCallerIdentityResponse xmlns="{NAMESPACE}">\n'
           "  <GetCallerIdentityResult>\n"
           f"    <Arn>{CALLER_ARN.replace(ACCOUNT, account)}</Arn>\n"
           "    <UserId>AIDAEMULATOREXAMPLE</UserId>\n"
           f"    <Account>{account}</Account>\n"
           "  </GetCallerIdentityResult>\n"
           f"  <ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>\n"
           "</GetCallerIdentityResponse>\n")
    return 200, {"Content-Type": "text/xml"}, xml.encode()


def error(code: str, message: str) -> Reply:
    """An STS error document; the omics error codes of injected faults become STS's own."""
    code, status = ERRORS.get(code, (code, 400))
    xml = (f'<ErrorResponse xmlns="{NAMESPACE}">\n'
           f"  <Error><Type>{'Receiver' if status >= 500 else 'Sender'}</Type><Code>{escape(code)}</Code>"
           f"<Message>{escape(message)}</Message></Error>\n"
           f"  <RequestId>{uuid.uuid4()}</RequestId>\n"
           "</ErrorResponse>\n")
    return status, {"Content-Type": "text/xml"}, xml.encode()
