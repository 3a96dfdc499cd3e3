"""The settings a batch member really ran with, when its record cannot say: observed from GetRun.

A member record is a pure function of its batch record and the ListRunsInBatch item, so it
holds the run's own settings only when the batch record holds them. A batch found by
`runlog import` (started without runlog: GetBatch does not return the run settings), or one
whose settings file could not be read, gives members whose record holds the default setting
alone, with a warning; so does a run ListRunsInBatch lists for a run setting the batch was
not sent (refresh then asks GetRun for it too: batch.MemberPages.unknown). GetRun of each
such member's run says what it actually ran with; that answer is appended as a
**member-settings observation** (source `MemberSettings`, status none), never written into
the immutable record:

    {"from": "GetRun", "run": {"id", "uuid", "arn", "batchId", "digest"}, "runOutputUri": "s3://…",
     "settings": {"workflowId", "parameters", "name", "outputUri", "runGroupId", "priority", …,
                  "runTags"}}

or, when GetRun could not tell (the run was deleted, AccessDenied, throttled beyond the
retries, the run id now names another run, an answer too large), what is not known and why:

    {"from": "GetRun", "run": {"id", "uuid"}, "unknown": {"code": "…", "message": "…"}}

`settings` has the shape of a member record's `request` (a StartRun request with the batch's
`runTags` for the run's tags), so readers use it in the request's place: `show`, `diff`
(member against member) and `export` present it as observed from the service, never as
submitted; `runlog replay MEMBER` starts the run again from them (runlog.replay). Readers call
`known_settings`; `observe_settings` writes (refresh and import). `run.digest` is the workflow
definition's digest GetRun reported, which replay checks for drift (observations written before
it was kept lack it: replay then says the workflow was not checked)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SOURCE = "MemberSettings"
FROM = "GetRun"
MAX_SETTINGS_BYTES = 1 << 20  # an answer's settings larger than this are not kept (unknown, with why)
# Why GetRun could not tell that will not change by asking again: the member is not asked again.
FINAL_UNKNOWN = frozenset({"ResourceNotFoundException", "RunReplaced", "TooLarge"})
# The GetRun members that are run settings (StartRun takes them by the same names), as
# runlog.importer.REQUEST_MEMBERS and the newer ones, less `tags`, which a member's request holds
# as `runTags` (the batch's name for them); GetRun's `configuration.name` is `configurationName`.
SETTING_MEMBERS = (
    "workflowId", "workflowType", "workflowOwnerId", "workflowVersionName", "roleArn", "name", "runGroupId",
    "priority", "parameters", "parametersUri", "storageCapacity", "storageType", "outputUri", "outputUriPrefixMode",
    "logLevel", "retentionMode", "cacheId", "cacheBehavior", "networkingMode", "engineSettings",
    "scratchStorageMode", "sessionPolicy", "requesterPaysEnabled",
)


# -- reading ------------------------------------------------------------------------------------

@dataclass
class Known:
    """What the ledger knows of a member's own settings.

    `state` is `recorded` (its record holds them: a batch submitted through runlog),
    `observed` (a member-settings observation holds them: `settings`, `observed_at`), or
    `unknown` (its record holds the default alone and GetRun has not told, or could not:
    `reason`, and when it was asked: `observed_at`; `code` is GetRun's error code when GetRun
    was asked and could not tell, None otherwise)."""

    state: str
    settings: dict[str, Any] | None = None
    observed_at: str | None = None
    reason: str | None = None
    run_output_uri: str | None = None
    digest: str | None = None  # the workflow digest GetRun reported for the run (observed only)
    code: str | None = None  # GetRun's error code (unknown after GetRun was asked only)

    @property
    def note(self) -> str:
        """One line saying where the settings come from."""
        if self.state == "observed":
            return (f"settings observed from {FROM} at {self.observed_at} (what the service says the run ran "
                    "with, not a request runlog submitted: its record holds the batch's default setting alone)")
        if self.state == "unknown":
            return f"own settings unknown ({self.reason}): only the batch's default setting is recorded"
        return "settings as submitted"

    def as_dict(self) -> dict[str, Any]:
        asked = self.state == "observed" or (self.reason or "").startswith(f"{FROM}: ")
        found: dict[str, Any] = {"state": self.state, "from": FROM if asked else None}
        if self.observed_at:
            found["observed_at"] = self.observed_at
        if self.reason:
            found["reason"] = self.reason
        if self.settings is not None:
            found["settings"] = self.settings
        return found


NOT_ASKED = "GetRun not asked yet: `refresh` of its batch asks it"


def unknown_warning(setting_id: str) -> str:
    """The warning a member record holds when its batch record does not hold its own settings
    (written by batch._member; `needs_settings` looks for exactly this text)."""
    return (f"run setting {setting_id!r} is not in the batch's recorded settings: "
            "its own settings are unknown, only the default is recorded")


def needs_settings(record: dict) -> bool:
    """Whether a record is a member whose own settings its record does not hold: it carries
    `unknown_warning` for its runSettingId (any other warning does not count)."""
    if record.get("kind") != "member":
        return False
    batch = record.get("batch")
    warnings = record.get("warnings")
    if not isinstance(batch, dict) or not isinstance(warnings, list):
        return False
    return unknown_warning(str(batch.get("run_setting_id") or "")) in warnings


def known_settings(record: dict, observations: list[dict]) -> Known:
    """What is known of a record's own settings (see Known). Not a member, or a member whose
    record holds its settings: `recorded`. Otherwise the newest member-settings observation
    that holds settings; else the newest one's reason; else not asked yet."""
    if not needs_settings(record):
        return Known("recorded", settings=record.get("request"))
    latest_unknown = None
    for observation in reversed(observations):
        if observation["source"] != SOURCE:
            continue
        body = observation["body"]
        if isinstance(body.get("settings"), dict):
            uri = body.get("runOutputUri")
            digest = (body.get("run") or {}).get("digest") if isinstance(body.get("run"), dict) else None
            return Known("observed", settings=body["settings"], observed_at=observation["observed_at"],
                         run_output_uri=uri if isinstance(uri, str) else None,
                         digest=digest if isinstance(digest, str) else None)
        if latest_unknown is None and isinstance(body.get("unknown"), dict):
            latest_unknown = observation
    if latest_unknown is not None:
        unknown = latest_unknown["body"]["unknown"]
        code, message = unknown.get("code"), unknown.get("message")
        return Known("unknown", reason=f"{FROM}: {code}: {message}" if message else f"{FROM}: {code}",
                     observed_at=latest_unknown["observed_at"], code=str(code))
    if record.get("outcome", {}).get("status") != "submitted":
        return Known("unknown", reason="its submission failed: no run, so GetRun cannot tell")
    return Known("unknown", reason=NOT_ASKED)


def reported_parameters(record: dict, observations: list[dict]) -> tuple[str, dict] | None:
    """For a member whose record holds its own settings (a batch submitted through runlog):
    (when, parameters) of its newest GetRun observation that reports parameters, when they are
    not the parameters its record holds, else None. The record holds the settings file's run
    setting as runlog read and pinned it; should the file have been changed and put back while
    the service read it (runlog's ETag check sees the same object before and after), GetRun is
    the service's word on what the run ran with. Readers keep the record and say which they give."""
    if record.get("kind") != "member" or needs_settings(record):
        return None
    recorded = (record.get("request") or {}).get("parameters") or {}
    for observation in reversed(observations):
        body = observation["body"]
        if observation["source"] == "GetRun" and isinstance(body, dict) and isinstance(body.get("parameters"), dict):
            return (observation["observed_at"], body["parameters"]) if body["parameters"] != recorded else None
    return None


def reported_note(observed_at: str) -> str:
    """What readers say of a member whose GetRun reported other parameters (reported_parameters)."""
    return (f"GetRun at {observed_at} reported parameters other than its record holds (its settings file changed "
            "while the service read it?): the run ran with GetRun's; the record keeps the settings as pinned")


def as_observed(record: dict, known: Known) -> dict:
    """The record with its request replaced by the observed settings (for readers that
    compare or export requests), or the record itself when nothing was observed."""
    if known.state != "observed" or known.settings is None:
        return record
    return {**record, "request": known.settings}


# -- from GetRun -----------------------------------------------------------------------------------

def settings_from_run(run: dict[str, Any]) -> dict[str, Any]:
    """A member-settings observation's body from a GetRun answer (plain JSON): the run
    settings it reports, in a member request's shape; `unknown` when they are too large."""
    from runlog import fastjson

    settings = {m: run[m] for m in SETTING_MEMBERS if run.get(m) not in (None, "", {})}
    if run.get("workflowType") == "PRIVATE":
        settings.pop("workflowType", None)  # the default, as an imported run's request leaves it out
    if run.get("storageType") == "DYNAMIC":
        settings.pop("storageCapacity", None)  # not a setting of dynamic storage (as an imported run's request)
    configuration = run.get("configuration")
    if isinstance(configuration, dict) and isinstance(configuration.get("name"), str) and configuration["name"]:
        settings["configurationName"] = configuration["name"]
    if run.get("tags"):
        settings["runTags"] = run["tags"]
    identity = {k: run[k] for k in ("id", "uuid", "arn", "batchId", "digest") if isinstance(run.get(k), str)}
    size = len(fastjson.dumps(settings))
    if size > MAX_SETTINGS_BYTES:
        return {"from": FROM, "run": identity, "unknown": {
            "code": "TooLarge", "message": f"GetRun's settings are {size} bytes, more than the {MAX_SETTINGS_BYTES} "
                                           "runlog keeps"}}
    body: dict[str, Any] = {"from": FROM, "run": identity, "settings": settings}
    if isinstance(run.get("runOutputUri"), str):
        body["runOutputUri"] = run["runOutputUri"]
    return body


def _unknown(run_id: str, run_uuid: str | None, code: str, message: str) -> dict[str, Any]:
    return {"from": FROM, "run": {"id": run_id, "uuid": run_uuid}, "unknown": {"code": code, "message": message}}


def observe_settings(ledger, batch, omics, jobs: int = 16) -> dict[str, int]:
    """GetRun, `jobs` calls at a time, for each member of `batch` (an Entry) that started a
    run, whose record does not hold its own settings, and whose settings no observation holds
    yet; each answer appended as a member-settings observation, one transaction per round of
    `jobs` × 8 calls. A GetRun the service refuses (the run deleted, AccessDenied, throttled
    beyond botocore's retries) or that answers for another run (its id reused) is recorded as
    `unknown` with the reason, never a guess; the same reason is not recorded twice, and a
    member whose run is gone is not asked again. A failure to reach the service at all is
    raised (what earlier rounds recorded stays). Returns {"asked", "observed", "unknown"}."""
    from concurrent.futures import ThreadPoolExecutor

    from runlog import aws
    from runlog import record as rec
    from runlog.errors import ServiceError

    def ask(row: tuple) -> dict[str, Any]:
        _, _, run_id, run_uuid, _ = row
        try:
            answer = omics.get_run(id=run_id)
        except Exception as exc:
            error = aws.error_from(exc, "GetRun")
            if isinstance(error, ServiceError):
                return _unknown(run_id, run_uuid, error.code, error.service_message)
            raise error from None
        answer.pop("ResponseMetadata", None)
        run = rec.jsonable(answer)
        if run_uuid and run.get("uuid") != run_uuid:
            return _unknown(run_id, run_uuid, "RunReplaced",
                            f"run id {run_id} now names another run (uuid {run.get('uuid')}): this run is gone")
        return settings_from_run(run)

    asked = observed = unknown = 0
    after = 0
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="runlog-settings") as pool:
        while True:
            rows = ledger.members_without_settings(batch.address, SOURCE, after, max(1, jobs) * 8)
            if not rows:
                break
            after = rows[-1][0]
            wanted = [row for row in rows if row[4] not in FINAL_UNKNOWN]
            answers = list(pool.map(ask, wanted))
            asked += len(wanted)
            observed_at = rec.utc_now()
            seen = []
            for (_, address, _, run_uuid, last_code), body in zip(wanted, answers, strict=True):
                if "settings" in body:
                    observed += 1
                else:
                    unknown += 1
                    if body["unknown"]["code"] == last_code:
                        continue  # recorded already, for the same reason
                seen.append((address, run_uuid, observed_at, SOURCE, None, body))
            ledger.add_observations(seen)
    return {"asked": asked, "observed": observed, "unknown": unknown}


def settings_unknown(outline: dict) -> bool:
    """Whether a batch record (its outline) lacks its runs' own settings: a batch found by
    import (no batchRunSettings), or one whose settings file could not be read."""
    settings = outline["request"].get("batchRunSettings")
    if not settings:
        return True
    return "s3UriSettings" in settings and "error" in ((outline.get("batch") or {}).get("settings_file") or {})
