"""The one seam between runlog and AWS: sessions and clients, configured the way the
aws CLI would be (profiles, regions, AWS_* variables, AWS_ENDPOINT_URL_<SERVICE>), plus
translation of botocore errors into runlog's one-line errors.

Clients are botocore's (boto3's own clients are these; boto3 is the dependency that brings
botocore), made from a botocore session so that a submit does not pay for importing boto3
and s3transfer. botocore is imported inside functions so that read-only commands never
load it."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from runlog.errors import OperationError, RunlogError, ServiceError, UsageError

# The services runlog calls: runlog's sessions read botocore's endpoint data for these only.
ENDPOINT_SERVICES = ("omics", "s3", "sts")

# Services whose models runlog's sessions read without their documentation (S3's model is
# 1.3 MB, four fifths of it documentation; only client docstrings use it).
UNDOCUMENTED = ("s3", "sts")

# botocore's service ids for the environment variables AWS_ENDPOINT_URL_<ID>.
_ENDPOINT_ENV = {"omics": "AWS_ENDPOINT_URL_OMICS", "sts": "AWS_ENDPOINT_URL_STS", "s3": "AWS_ENDPOINT_URL_S3"}


@dataclass(frozen=True)
class AwsSettings:
    """Where and as whom to talk to AWS. `endpoint_url` is the HealthOmics endpoint
    (from --endpoint-url or the config), exactly like the aws CLI's global option.
    `pinned` means a missing endpoint_url is AWS's own endpoint, whatever AWS_ENDPOINT_URL*
    say now (an attempt or run recorded against AWS stays with AWS)."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    pinned: bool = False

    def __post_init__(self):
        check_region(self.region)
        check_endpoint_url(self.endpoint_url)


def settings_for(config=None, *, profile: str | None = None, region: str | None = None,
                 endpoint_url: str | None = None, recorded: dict | None = None) -> AwsSettings:
    """The one rule for where a call goes: flag > recorded > config > environment.

    `recorded` is a record's or attempt's `aws` section ({region, profile, endpoint_url}),
    given when acting on something already recorded (recover, replay, watch, refresh): its
    region and endpoint are where the run lives, so the configuration file or the
    environment of today cannot send it elsewhere. A recorded endpoint of null is AWS's own.
    Without `recorded` (a new submission): flag > config > environment (boto's own chain)."""
    config_get = config.get if config is not None else (lambda key: None)
    if recorded is not None:
        return AwsSettings(
            profile=profile or recorded.get("profile") or config_get("profile"),
            region=region or recorded.get("region") or config_get("region"),
            endpoint_url=endpoint_url or recorded.get("endpoint_url"),
            pinned=not endpoint_url,
        )
    return AwsSettings(
        profile=profile or config_get("profile"),
        region=region or config_get("region"),
        endpoint_url=endpoint_url or config_get("endpoint_url"),
    )


def custom_endpoint(service: str, explicit: str | None = None, sess: Session | None = None) -> str | None:
    """The endpoint a client for `service` will use when it is not AWS's own: an explicit
    URL, else AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL, else (given the session
    `sess`) `endpoint_url` in the profile's `services` section or in the profile itself, as
    botocore resolves them (none of those when the configuration ignores configured endpoints)."""
    if explicit:
        return explicit
    if sess is not None:
        return configured_endpoint(sess, service)
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() == "true":  # as botocore reads it
        return None
    return os.environ.get(_ENDPOINT_ENV.get(service, "")) or os.environ.get("AWS_ENDPOINT_URL") or None


def configured_endpoint(sess: Session, service: str) -> str | None:
    """The endpoint botocore configures for `service` in this session (environment, then the
    shared config file's profile), None when it uses AWS's own."""
    from botocore.configprovider import ConfiguredEndpointProvider

    core = sess.core
    if core.get_config_variable("ignore_configured_endpoint_urls"):
        return None
    return ConfiguredEndpointProvider(full_config=core.full_config, scoped_config=core.get_scoped_config(),
                                      client_name=service).provide() or None


class Session:
    """A botocore session with the few boto3.Session manners runlog uses. botocore's own
    session makes the same clients as boto3's, without importing boto3 and s3transfer
    (about a fifth of a submit's start-up)."""

    def __init__(self, core, region: str | None = None):
        self.core = core
        self.region = region  # overrides the session's own region (a session runlog was given)

    @property
    def region_name(self) -> str | None:
        return self.region or self.core.get_config_variable("region")

    def get_credentials(self):
        return self.core.get_credentials()

    def scoped_config(self) -> dict:
        return self.core.get_scoped_config()

    def client(self, service: str, **options: Any):
        if self.region:
            options.setdefault("region_name", self.region)
        if service not in ENDPOINT_SERVICES:  # this session's endpoint data holds only those
            import botocore.session

            core = botocore.session.Session(profile=self.core.profile)
            if self.region_name:
                core.set_config_variable("region", self.region_name)
            return core.create_client(service, **options)
        return self.core.create_client(service, **options)


def adopt(given, settings: AwsSettings) -> Session:
    """A session a library user made (a boto3.Session or a botocore session) as runlog's
    Session: its credentials and profile, the settings' region when they name one (the
    caller's session is not changed)."""
    core = getattr(given, "_session", given)  # boto3.Session wraps a botocore session
    if not hasattr(core, "create_client") or not hasattr(core, "get_config_variable"):
        raise UsageError(f"session must be a boto3.Session or a botocore session, got {type(given).__name__}")
    return Session(core, region=settings.region)


def session(settings: AwsSettings) -> Session:
    import botocore.exceptions
    import botocore.session

    core = botocore.session.Session(profile=settings.profile)
    if settings.region:
        core.set_config_variable("region", settings.region)
    try:
        core.get_scoped_config()  # a profile that does not exist is said now, not at the first call
    except botocore.exceptions.ProfileNotFound:
        raise UsageError(
            f"AWS profile {settings.profile!r} not found: check `aws configure list-profiles` "
            "or the profile key in .runlog.toml"
        ) from None
    core.register_component("data_loader", _narrow_loader(core.get_config_variable("data_path")))
    core.register_component("response_parser_factory", _parser_factory())
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
    return Session(core)


# The answers a refresh pages through by the thousand (ListRuns, ListRunsInBatch: 100 000
# items each for a batch of 100 000 runs): parsed by a walker made once from the output
# shape instead of botocore's generic one (a method looked up by name for every value).
PAGED_OUTPUTS = frozenset({"ListRunsResponse", "ListRunsInBatchResponse"})


class _NotPlain(Exception):
    """A value the walker leaves to botocore (a type other than the shape's JSON type)."""


def _walker(shape: Any, parser: Any) -> Any:
    """A function from the JSON value of `shape` to what botocore's rest-json `parser` makes
    of it: a structure's members in the shape's order, those that are null left out; a list's
    items, a null kept; text as it came; every other value through the parser's own handler
    for its type (timestamps, numbers, booleans, blobs). Raises _NotPlain, for botocore's own
    parse, for what it does not do the same way for certain: maps, documents, unions, header
    values, a structure or list that is not a JSON object or array."""
    from functools import partial

    from botocore.utils import is_json_value_header

    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type or getattr(shape, "is_tagged_union", False):
            raise _NotPlain
        members = [(name, member.serialization.get("name", name), _walker(member, parser))
                   for name, member in shape.members.items()]

        def structure(value: Any) -> Any:
            if type(value) is not dict:
                raise _NotPlain
            out = {}
            for name, key, walk in members:
                raw = value.get(key)
                if raw is not None:
                    out[name] = walk(raw)
            return out
        return structure
    if shape.serialization.get("location"):
        raise _NotPlain
    if kind == "list":
        walk_item = _walker(shape.member, parser)

        def listing(value: Any) -> Any:
            if type(value) is not list:
                raise _NotPlain
            return [None if item is None else walk_item(item) for item in value]
        return listing
    if kind == "string" and not is_json_value_header(shape):
        return _same  # botocore's _handle_string, for a value that is not a header's
    if kind in ("timestamp", "integer", "long", "boolean", "float", "double", "blob"):
        return partial(getattr(parser, f"_handle_{kind}"), shape)
    raise _NotPlain  # maps and anything else


def _same(value: Any) -> Any:
    return value


def _parser_factory() -> Any:
    """botocore's ResponseParserFactory, whose rest-json parser reads PAGED_OUTPUTS with a
    walker (_walker) and everything else as botocore does; the same values
    (tests/test_aws_pages.py compares the two on hostile pages and on the emulator's answers)."""
    from botocore.parsers import ResponseParserFactory, RestJSONParser

    class PagesParser(RestJSONParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._walkers: dict[str, Any] = {}

        def _parse_shape(self, shape: Any, node: Any) -> Any:
            if shape.name not in PAGED_OUTPUTS:
                return super()._parse_shape(shape, node)
            try:
                walk = self._walkers.get(shape.name)
                if walk is None:
                    walk = self._walkers[shape.name] = _walker(shape, self)
                return walk(node)
            except _NotPlain:
                return super()._parse_shape(shape, node)

    class Factory(ResponseParserFactory):
        def create_parser(self, protocol_name: str) -> Any:
            if protocol_name == "rest-json":
                return PagesParser(**self._defaults)
            if protocol_name == "rest-xml":
                return _xml_listing_parser()(**self._defaults)
            return super().create_parser(protocol_name)

    return Factory()


# S3's listings (ListObjectsV2: 1 000 objects a page, a cohort's inputs listed by the hundred
# thousand): each Object structure is parsed by botocore's own steps, planned once per shape.
XML_PLANNED = frozenset({"Object"})


def _xml_listing_parser() -> Any:
    """botocore's rest-xml parser, whose structures named in XML_PLANNED are parsed as
    BaseXMLResponseParser._handle_structure parses them (child elements by tag, namespace
    removed, a tag given twice gathered into a list; each member in the shape's order through
    the parser's own handler for its type) with what does not change between items worked out
    once: each member's XML name and handler, each tag's name without its namespace. A shape
    with members that are attributes, headers or event headers, an exception or a union is
    left to botocore (tests/test_aws_pages.py compares the two)."""
    from botocore.parsers import RestXMLParser

    class ListingParser(RestXMLParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._plans: dict[int, tuple[Any, list | None]] = {}  # id -> (the shape, kept alive; its plan)
            self._tags: dict[str, str] = {}

        def _plan(self, shape: Any) -> list | None:
            known = self._plans.get(id(shape))
            if known is not None and known[0] is shape:
                return known[1]
            steps = []
            plain = not (shape.metadata.get("exception", False) or getattr(shape, "is_tagged_union", False))
            for name, member in shape.members.items() if plain else ():
                serialization = member.serialization
                if serialization.get("location") or serialization.get("eventheader") \
                        or serialization.get("xmlAttribute"):
                    plain = False
                    break
                # what ResponseParser._parse_shape calls for the member
                handler = getattr(self, f"_handle_{member.type_name}", self._default_handle)
                steps.append((name, self._member_key_name(member, name), member, handler))
            plan = steps if plain else None
            self._plans[id(shape)] = (shape, plan)
            return plan

        def _handle_structure(self, shape: Any, node: Any) -> Any:
            plan = self._plan(shape) if shape.name in XML_PLANNED and not isinstance(node, list) else None
            if plan is None:
                return super()._handle_structure(shape, node)
            tags, by_name = self._tags, {}  # type: ignore[var-annotated]
            for item in node:
                tag = tags.get(item.tag)
                if tag is None:
                    tag = tags[item.tag] = self._node_tag(item)
                known = by_name.get(tag)
                if known is None:
                    by_name[tag] = item
                elif isinstance(known, list):
                    known.append(item)
                else:
                    by_name[tag] = [known, item]
            parsed = {}
            for name, xml_name, member, handler in plan:
                found = by_name.get(xml_name)
                if found is not None:
                    parsed[name] = handler(member, found)
            return parsed

    return ListingParser


def parse_timestamp(value: Any):
    """botocore's timestamp parser, faster for the ISO 8601 text HealthOmics answers with:
    `datetime.fromisoformat` gives the same time and offset that botocore's dateutil-based
    parser gives (tests/test_speed.py compares them); anything else (S3's RFC 822 headers,
    epoch seconds) goes to botocore's own. Recording a 100 000-run batch parses three
    timestamps a run, which botocore's parser made a third of `runlog refresh`'s time.
    (`datetime` is imported with the module: an import statement here cost more than the
    parse itself.)"""
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T" and (
            value.endswith("Z") or value[-6] in "+-"):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    from botocore.utils import parse_timestamp as botocores

    return botocores(value)


def _narrow_loader(data_path: str | None):
    """botocore's model Loader, made as botocore makes it (AWS_DATA_PATH, ~/.aws/models, its
    own data, the same files, versions and search order), with these costs taken out of
    every client's creation:

    - loading a service's model first checks that this one service exists (botocore's
      list_api_versions, its own directories) instead of listing every service botocore knows
      (some 400 directories and 1 000 stat calls, once per model type); a service not found
      runs botocore's own check, which raises its own UnknownServiceError;
    - model files are parsed into plain dicts, not OrderedDicts: the same keys in the same
      order (dicts keep insertion order), parsed about four times faster (endpoints.json, read
      for every session's first client, is 1.2 MB; S3's model is the largest of all); the omics
      model, which `runlog submit` parsed already to make its options, is not parsed again;
    - endpoints.json (1.2 MB, every service's endpoints) is read for ENDPOINT_SERVICES only,
      kept trimmed in runlog's cache (runlog.modelcache: JSON, owned by you, refused
      otherwise); Session.client makes a client for any other service from a plain session;
    - S3's and STS's models are read without their documentation (without_documentation,
      cached the same way): four fifths of S3's 1.3 MB model, used only for docstrings."""
    import json
    import threading

    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import JSONFileLoader, Loader

    class PlainJSONFileLoader(JSONFileLoader):
        def _load_file(self, full_path, open_method):  # botocore's own, without object_pairs_hook
            if not os.path.isfile(full_path):
                return None
            startrun = sys.modules.get("runlog.startrun")  # parsed for the command's options already?
            if startrun is not None and (model := startrun.parsed_model_file(full_path)) is not None:
                return model  # the same file's JSON; botocore only reads its models
            parts = os.path.normpath(full_path).split(os.sep)
            if len(parts) >= 3 and parts[-3] in UNDOCUMENTED and parts[-1].startswith("service-2.json"):
                from runlog import modelcache

                return modelcache.cached(full_path, "service-2 without documentation",
                                         lambda: without_documentation(self._parse(full_path, open_method)))
            return self._parse(full_path, open_method)

        def _parse(self, full_path, open_method):
            with open_method(full_path, "rb") as fp:
                payload = fp.read().decode("utf-8")
            return json.loads(payload)

    class NarrowLoader(Loader):
        _asked = threading.local()

        def load_service_model(self, service_name, type_name, api_version=None):
            self._asked.name = service_name
            try:
                return super().load_service_model(service_name, type_name, api_version)
            finally:
                self._asked.name = None

        def load_data_with_path(self, name):
            if name != "endpoints":
                return super().load_data_with_path(name)
            from runlog import modelcache

            for root in self.search_paths:  # as botocore searches: the first file found
                base = os.path.join(root, name)
                for extension in (".json", ".json.gz"):
                    if os.path.isfile(base + extension):
                        def build(base=base):
                            return only_services(self.file_loader.load_file(base), ENDPOINT_SERVICES)

                        data = modelcache.cached(base + extension, "endpoints:" + ",".join(ENDPOINT_SERVICES),
                                                 build)
                        return data, base
            return super().load_data_with_path(name)

        def list_available_services(self, type_name):
            name = getattr(self._asked, "name", None)
            if name is not None:
                try:
                    if self.list_api_versions(name, type_name):
                        return [name]  # not cached: only load_service_model's membership test sees it
                except DataNotFoundError:
                    pass
            return super().list_available_services(type_name)

    if not data_path:
        return NarrowLoader(file_loader=PlainJSONFileLoader())
    return NarrowLoader(extra_search_paths=[os.path.expanduser(os.path.expandvars(path))
                                            for path in data_path.split(os.pathsep)],
                        file_loader=PlainJSONFileLoader())


def client(settings: AwsSettings, service: str, *, check_credentials: bool = True,
           sess=None, **config_options: Any):
    """A boto3 client. With a custom endpoint, host-prefix injection is off (HealthOmics
    operations prepend `workflows-`, `tags-`, `control-storage-` to the host otherwise).
    Retries use botocore's `standard` mode unless AWS_RETRY_MODE or the profile says otherwise."""
    from botocore.config import Config

    sess = sess or session(settings)
    if not sess.region_name:
        raise UsageError(
            "no AWS region configured: pass `region`, set AWS_REGION or AWS_DEFAULT_REGION, "
            "or put region = \"us-east-1\" (say) in .runlog.toml", option="region"
        )
    if check_credentials and sess.get_credentials() is None:
        raise UsageError(
            "no AWS credentials found: run `aws configure` (or `aws sso login`), set AWS_PROFILE, "
            "or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    check_region(sess.region_name)
    explicit = settings.endpoint_url if service == "omics" else None
    pinned = service == "omics" and settings.pinned
    endpoint = explicit if pinned else custom_endpoint(service, explicit, sess)
    check_endpoint_url(endpoint)
    options: dict[str, Any] = {"user_agent_extra": "runlog"}
    if endpoint:
        options["inject_host_prefix"] = False
    if pinned:
        options["ignore_configured_endpoint_urls"] = True
    scoped = sess.scoped_config()
    if not os.environ.get("AWS_RETRY_MODE") and "retry_mode" not in scoped:
        options["retries"] = {"mode": "standard"}
    verify = config_options.pop("verify", None)  # the aws CLI's --no-verify-ssl / --ca-bundle
    options.update(config_options)
    made = sess.client(service, endpoint_url=explicit, config=Config(**options), verify=verify)
    _MADE[made] = (settings, sess)
    return made


# What each client runlog made was made with, for `caller_account` (a client given by a
# library caller is not in it).
_MADE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def caller_account(made) -> str | None:
    """The AWS account whose credentials the client `made` (aws.client's) calls with: STS
    GetCallerIdentity, asked once per client and only when called; None when it cannot be
    known (a client runlog did not make, STS not reachable or not asked: caller_identity)."""
    found = _MADE.get(made)
    if found is None:
        return None
    if len(found) == 2:
        found = _MADE[made] = (*found, caller_identity(*found).get("account"))
    return found[2]


def not_found_elsewhere(made, arn: object, operation: str, what: str) -> str | None:
    """Why a ResourceNotFoundException (or another resource's answer) from `operation` says
    nothing about the run or batch `arn` names: the client asks in another region than the
    ARN's, or as another account (STS, asked only here). One line naming both and the fix;
    None when they agree or cannot be told apart."""
    from runlog.arn import ARN_PLACE_RE, asked_elsewhere

    elsewhere = asked_elsewhere(arn, made.meta.region_name, operation, what)
    if elsewhere is not None:
        return elsewhere
    found = ARN_PLACE_RE.match(arn) if isinstance(arn, str) else None
    account = caller_account(made) if found is not None else None
    if found is None or account is None or account == found["account"]:
        return None
    home = found["account"]
    return (f"{operation} as account {account} does not know {what}, which is in account {home} (its ARN): "
            f"nothing recorded (ask with account {home}'s credentials: leave out the `profile` or the "
            "AWS_PROFILE / AWS_ACCESS_KEY_ID that says otherwise)")



def refuse_if_asked_elsewhere(made, arn: object, operation: str, what: str) -> None:
    """UsageError (nothing recorded) when a not-found answer from `operation` says nothing of
    the run or batch `arn` names (not_found_elsewhere): watch and refresh call it before they
    record a run or batch as gone."""
    elsewhere = not_found_elsewhere(made, arn, operation, what)
    if elsewhere is not None:
        raise UsageError(elsewhere)

def without_documentation(model: dict) -> dict:
    """A service model without the documentation of its operations, shapes and members (the
    service's own, and its clientContextParams', which botocore requires, are kept)."""
    def operation(spec: dict) -> dict:
        return {k: v for k, v in spec.items() if k not in ("documentation", "documentationUrl")}

    def shape(spec: dict) -> dict:
        out = {k: v for k, v in spec.items() if k != "documentation"}
        if isinstance(spec.get("members"), dict):
            out["members"] = {name: {k: v for k, v in member.items() if k != "documentation"}
                              for name, member in spec["members"].items()}
        return out

    return {**model, "operations": {name: operation(spec) for name, spec in model.get("operations", {}).items()},
            "shapes": {name: shape(spec) for name, spec in model.get("shapes", {}).items()}}


def only_services(endpoints: dict, services: tuple[str, ...]) -> dict:
    """botocore's endpoint data with each partition's services restricted to `services`
    (partitions, regions and defaults kept as they are)."""
    return {**endpoints, "partitions": [{**partition, "services": {name: data for name, data in
                                                                   partition.get("services", {}).items()
                                                                   if name in services}}
                                        for partition in endpoints["partitions"]]}


def error_from(exc: Exception, operation: str) -> RunlogError:
    """A botocore exception as a one-line runlog error."""
    import botocore.exceptions as bex

    if isinstance(exc, bex.ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return ServiceError(err.get("Code", "Unknown"), err.get("Message", str(exc)), status, operation)
    if isinstance(exc, bex.NoCredentialsError):
        return UsageError("no AWS credentials found: run `aws configure`, set AWS_PROFILE, "
                          "or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, bex.ParamValidationError):
        return UsageError(str(exc).replace("\n", " "))
    return OperationError(f"{operation} failed: {exc}")


def pages(paginate, operation: str, most: int | None = None, token: str = "nextToken"):
    """The pages of a botocore paginator's `paginate(...)`, stopped with a one-line error
    (OperationError, exit 1) when the service's answers cannot end: a page token given a
    second time (botocore catches only the same token twice in a row: A, B, A, B … would
    page for ever, each page written again and again), or more than `most` pages (a listing
    that hands out a new token every time). The pages already read are the caller's."""
    seen: set[str] = set()
    for count, page in enumerate(paginate, 1):
        following = page.get(token) if isinstance(page, dict) else None
        if following is not None:
            if following in seen:
                raise OperationError(f"{operation} failed: the service gave page token {_shown(str(following))} a "
                                     f"second time (after {count} pages): {_ENDLESS}; run the "
                                     "command again later")
            seen.add(following)
            if most is not None and count >= most:
                raise OperationError(f"{operation} failed: the listing had not ended after {count} pages (at most "
                                     f"{most} expected): {_ENDLESS}; run the command again later")
        yield page


def passing_failure(error: RunlogError, operation: str | tuple[str, ...]) -> bool:
    """Whether the failure of `operation` (or of one of several) as error_from makes it says
    nothing about what was asked and may be gone when it is asked again: a throttle, a request
    timeout (AMBIGUOUS_STATUSES) or a 5xx that outlived botocore's retries, or the answer lost
    on the way (an OperationError naming the operation). A listing that would never end (pages)
    is not: it says the service's answers cannot be paged."""
    operations = (operation,) if isinstance(operation, str) else operation
    if isinstance(error, ServiceError):
        return (error.http_status or 0) >= 500 or error.http_status in AMBIGUOUS_STATUSES
    return (type(error) is OperationError and _ENDLESS not in error.message
            and error.message.startswith(tuple(f"{name} failed: " for name in operations)))


_ENDLESS = "its listing would never end"  # pages' words: a failure that is no passing one


def not_sent(exc: Exception) -> str | None:
    """Why botocore refused to send a request (its own parameter validation, on one line), or
    None when `exc` is not such a refusal: then the request may have left this machine."""
    import botocore.exceptions as bex

    if isinstance(exc, bex.ParamValidationError):
        return " ".join(str(exc).split())
    return None


# Modelled errors that do not prove the request was refused: a throttle or a request timeout
# that outlived botocore's retries may follow a try that the service did process.
AMBIGUOUS_STATUSES = (408, 429)


def refusing_errors(operation_model) -> dict[str, int]:
    """The operation's modelled errors that prove the service refused the request, with their
    HTTP status: the client (sender) faults with a 4xx status, except AMBIGUOUS_STATUSES."""
    found = {}
    for shape in operation_model.error_shapes:
        error = shape.metadata.get("error", {})
        status = error.get("httpStatusCode")
        if error.get("senderFault") and status and 400 <= status < 500 and status not in AMBIGUOUS_STATUSES:
            found[shape.error_code or shape.name] = status
    return found


def refusal(exc: Exception, operation_model, *, resent: bool = False) -> ServiceError | None:
    """The ServiceError when `exc` is the service's proof that it refused the request (one of
    refusing_errors, with a 4xx status, on the first try); None when the outcome is unknown.
    A refusal of a retry proves nothing about the tries before it: botocore retries only a
    try whose outcome it could not know (a 5xx, a throttle, a lost connection), which the
    service may have carried out, and the retry may be refused because of that (a 409 for a
    requestId still in use, a quota the first try filled). For the same reason nothing is
    proof when `resent`: the request re-sends an attempt whose first send's outcome is
    unknown (recover), and a refusal now (other credentials, a workflow deleted since, a full
    quota) says nothing of what that send started."""
    import botocore.exceptions as bex

    if resent or not isinstance(exc, bex.ClientError):
        return None
    if exc.response.get("ResponseMetadata", {}).get("RetryAttempts"):
        return None
    error = error_from(exc, operation_model.name)
    if not isinstance(error, ServiceError) or error.code not in refusing_errors(operation_model):
        return None
    if error.http_status is not None and not 400 <= error.http_status < 500:
        return None
    return error


def describe_failure(exc: Exception) -> str:
    """A short, true account of a failed call, for messages about unknown outcomes."""
    import botocore.exceptions as bex

    if isinstance(exc, bex.ClientError):
        err = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode")
        tries = (meta.get("RetryAttempts") or 0) + 1
        return (f"{err.get('Code', 'error')}{f' (HTTP {status})' if status else ''}"
                f"{f' after {tries} tries' if tries > 1 else ''}")
    return f"{type(exc).__name__}: {exc}"


def is_transport_error(exc: Exception) -> bool:
    """True when the request may not have reached the service, or its answer was lost."""
    import botocore.exceptions as bex

    return isinstance(exc, (bex.EndpointConnectionError, bex.ConnectionClosedError, bex.ReadTimeoutError,
                            bex.ConnectTimeoutError, bex.ProxyConnectionError, bex.HTTPClientError))


def caller_identity(settings: AwsSettings, sess=None) -> dict:
    """The STS caller ({arn, account, user_id}), or {"unknown": why} when it cannot be known
    quickly. When HealthOmics is pointed at a custom endpoint and STS is not, STS is not asked
    (it would answer for a different world)."""
    if custom_endpoint("omics", settings.endpoint_url, sess) and not custom_endpoint("sts", sess=sess):
        return {"unknown": "not asked: HealthOmics is at a custom endpoint and STS is not "
                           "(set AWS_ENDPOINT_URL_STS, or AWS_ENDPOINT_URL for both)"}
    try:
        sts = client(settings, "sts", sess=sess, connect_timeout=2, read_timeout=3,
                     retries={"total_max_attempts": 1, "mode": "standard"})
        answer = sts.get_caller_identity()
    except Exception as exc:  # no permission, no network: the record says why
        return {"unknown": f"STS GetCallerIdentity failed: {describe_failure(exc)}"}
    return {"arn": answer["Arn"], "account": answer["Account"], "user_id": answer.get("UserId")}


def recorded_endpoint(settings: AwsSettings, sess: Session | None = None) -> str | None:
    """The HealthOmics endpoint to record for calls made with these settings (and the session
    `sess` they were made in): the custom one (flag, config, environment or AWS profile),
    without credentials; None for AWS's own."""
    if settings.pinned:
        return public_endpoint(settings.endpoint_url)
    return public_endpoint(custom_endpoint("omics", settings.endpoint_url, sess))


def public_endpoint(url: str | None) -> str | None:
    """An endpoint URL safe to record (no user:password)."""
    from runlog.gitcapture import strip_credentials

    return strip_credentials(url)


# -- checks of region names and endpoint URLs, made before a client is built (botocore would
# raise InvalidRegionError or ValueError deep inside, which read as internal errors) ----------

_REGION_RE = re.compile(r"^(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)$")  # a DNS label, as botocore requires
_HOST_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_UNSAFE_RE = re.compile(r"[\x00-\x20\x7f-\x9f\ud800-\udfff]")


def check_region(region: str | None) -> None:
    """Refuse (exit 2) a region name botocore would not accept, wherever it came from."""
    if region and not _REGION_RE.match(region):
        raise UsageError(f"invalid AWS region {_shown(region)}: a region is a name like us-east-1 (check `region`, "
                         "region in .runlog.toml, AWS_REGION / AWS_DEFAULT_REGION and the AWS profile)",
                         option="region")


def check_endpoint_url(url: str | None) -> None:
    """Refuse (exit 2) an endpoint URL that is not an http(s) URL with a valid host."""
    if not url:
        return
    why = endpoint_url_problem(url)
    if why:
        raise UsageError(f"invalid endpoint URL {_shown(url)}: {why}; expected e.g. http://127.0.0.1:8080 or "
                         "https://omics.us-east-1.amazonaws.com (check `endpoint_url`, endpoint_url in "
                         ".runlog.toml and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>)", option="endpoint_url")


def endpoint_url_problem(url: str) -> str | None:
    """What is wrong with `url` as an endpoint, or None."""
    if _UNSAFE_RE.search(url):
        return "it contains spaces or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a port that is not a number from 0 to 65535
    except ValueError as exc:
        return f"it is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "it must start with https:// or http://"
    if not host:
        return "it has no host name"
    if ":" in host or parts.netloc.rpartition("@")[2].startswith("["):
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return f"{host!r} is not an IPv6 address"
        return None
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_HOST_LABEL_RE.match(label) for label in name.split(".")):
        return f"{host!r} is not a valid host name"
    return None


def _shown(text: str, limit: int = 120) -> str:
    """A user's value quoted for a one-line message, control characters escaped."""
    quoted = ascii(text) if re.search(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]", text) else repr(text)
    return quoted if len(quoted) <= limit else quoted[:limit] + "…"
