"""Checking exports with each standard's own validator or schema, offline."""

from __future__ import annotations

import json
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
BCO_ROOT = "https://w3id.org/ieee/ieee-2791-schema/"
RO_CRATE_CONTEXT = "https://w3id.org/ro/crate/1.1/context"
RO_CRATE_PROFILE = "workflow-run-crate-0.5"
PROVENANCE_PROFILE = "provenance-run-crate-0.5"
PROFILE_NAMES = {RO_CRATE_PROFILE: "Workflow Run Crate 0.5", PROVENANCE_PROFILE: "Provenance Run Crate 0.5"}


def crate_profile(crate_dir: Path) -> str:
    """The most specific run-crate profile the crate's root claims (roc-validator's name)."""
    try:
        graph = json.loads((Path(crate_dir) / "ro-crate-metadata.json").read_text(encoding="utf-8"))["@graph"]
        root = next(e for e in graph if e.get("@id") == "./")
        claimed = root.get("conformsTo") or []
        ids = {c.get("@id") for c in (claimed if isinstance(claimed, list) else [claimed]) if isinstance(c, dict)}
    except (OSError, ValueError, StopIteration, KeyError):
        return RO_CRATE_PROFILE
    return PROVENANCE_PROFILE if "https://w3id.org/ro/wfrun/provenance/0.5" in ids else RO_CRATE_PROFILE


def bco_errors(bco: dict) -> list[str]:
    """IEEE 2791 schema errors (with format checks) and a wrong etag."""
    from jsonschema import Draft7Validator
    from referencing import Registry, Resource

    resources = []
    for path in sorted((SCHEMAS / "ieee-2791").glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema)))
    registry = Registry().with_resources(resources)
    root = registry.contents(BCO_ROOT + "2791object.json")
    validator = Draft7Validator(root, registry=registry, format_checker=Draft7Validator.FORMAT_CHECKER)
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '(object)'}: {e.message}"
              for e in sorted(validator.iter_errors(bco), key=lambda e: list(map(str, e.absolute_path)))]
    from runlog.export.bco import etag

    if isinstance(bco, dict) and bco.get("etag") != etag(bco):
        errors.append("etag: does not match the SHA-256 of the object's canonical JSON")
    return errors


def prov_json_errors(text: str) -> list[str]:
    """The W3C PROV-JSON schema, then a round trip through prov.read."""
    from jsonschema import Draft4Validator

    schema = json.loads((SCHEMAS / "prov" / "prov-json.schema.json").read_text(encoding="utf-8"))
    try:
        document = json.loads(text)
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '(document)'}: {e.message}"
              for e in Draft4Validator(schema).iter_errors(document)]
    try:
        import prov

        parsed = prov.read(__import__("io").StringIO(text), format="json")
        if parsed is None or not parsed.get_records():
            errors.append("prov.read found no records")
    except Exception as exc:  # any failure to read back is a finding
        errors.append(f"prov.read failed: {exc}")
    return errors


def seed_context_cache(cache_path: Path) -> None:
    """Put the bundled RO-Crate 1.1 context into roc-validator's HTTP cache (requests-cache,
    SQLite), so validation runs offline and skips nothing."""
    import io

    import requests
    import urllib3
    from requests_cache import CachedSession

    body = (SCHEMAS / "ro-crate" / "ro-crate-1.1-context.jsonld").read_bytes()
    session = CachedSession(cache_name=str(cache_path), backend="sqlite")
    response = requests.Response()
    response.status_code = 200
    response._content = body
    response.url = RO_CRATE_CONTEXT
    response.encoding = "utf-8"
    response.headers["Content-Type"] = "application/ld+json"
    response.raw = urllib3.HTTPResponse(body=io.BytesIO(body), headers={"Content-Type": "application/ld+json"},
                                        status=200, preload_content=False, request_url=RO_CRATE_CONTEXT)
    response.request = requests.Request("GET", RO_CRATE_CONTEXT).prepare()
    session.cache.save_response(response, expires=None)
    session.close()


def crate_report(crate_dir: Path, cache_path: Path, *, profile: str | None = None,
                 severity: str = "REQUIRED") -> tuple[list[str], int] | None:
    """(failures at `severity`, skipped checks) from roc-validator with the profile the crate
    claims (Provenance Run Crate 0.5 when it describes tasks, else Workflow Run Crate 0.5),
    offline; None when roc-validator is not installed."""
    try:
        from rocrate_validator import models, services
    except ImportError:
        return None
    if not Path(str(cache_path) + ".sqlite").exists():
        seed_context_cache(cache_path)
    settings = models.ValidationSettings(rocrate_uri=str(crate_dir),
                                         profile_identifier=profile or crate_profile(crate_dir),
                                         requirement_severity=severity, offline=True, cache_path=str(cache_path))
    result = services.validate(settings)
    failures = [f"{issue.check.identifier}: {issue.message}" for issue in result.get_issues()]
    return failures, int(result.skipped_checks_count or 0)


def check_export(target: Path, fmt: str) -> list[tuple[str, list[str] | None]]:
    """Which files of an export (`fmt` written to `target`) have a standard to check against,
    and what each check found: (file, problems), problems None when the checker is not installed."""
    import tempfile

    from runlog.export.methods import check_citation

    base = target if target.is_dir() else target.parent
    verdicts: list[tuple[str, list[str] | None]] = []
    crates = [target] if fmt == "ro-crate" else ([target] if fmt == "all" else [])
    for crate in crates:
        with tempfile.TemporaryDirectory() as cache:
            report = crate_report(crate, Path(cache) / "http-cache")
        if report is None:
            verdicts.append((f"{crate} (the RO-Crate check needs roc-validator: pip install roc-validator)", None))
        else:
            failures, skipped = report
            verdicts.append((f"{crate} "
                             f"({PROFILE_NAMES[crate_profile(crate)]})",
                             failures + ([f"{skipped} check(s) skipped"] if skipped else [])))
    bcos = sorted((base / "bco").glob("*.bco.json")) if fmt == "all" else sorted(target.glob("*.bco.json"))
    candidates = {"bco": [target] if target.is_file() else bcos, "prov-json": [target],
                  "methods": [target / "CITATION.cff"],
                  "all": ([base / "bco.json"] if (base / "bco.json").is_file() else bcos)
                  + [base / "prov.json", base / "methods" / "CITATION.cff"]}.get(fmt, [])
    for path in candidates:
        text = path.read_text(encoding="utf-8")
        if path.name.endswith(".cff"):
            verdicts.append((f"{path} (CFF 1.2.0 required keys)", check_citation(text)))
        elif fmt == "bco" or path.name.endswith("bco.json"):
            verdicts.append((f"{path} (IEEE 2791)", bco_errors(json.loads(text))))
        else:
            verdicts.append((f"{path} (PROV-JSON)", prov_json_errors(text)))
    return verdicts
