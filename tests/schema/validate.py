#!/usr/bin/python3
"""Validate sipdrain's event schemas, sample events and encoder output.

Usage:
  /usr/bin/python3 tests/schema/validate.py --schemas schemas/events \
      [--fixtures tests/fixtures/events] [--jsonl FILE ...] [-v]

Checks, each failure printed as one line "FAIL <file>: <message>":
  * every schemas/*.schema.json is a valid JSON Schema 2020-12, its $id is
    https://sipdrain.dev/schemas/events/<file name>, every property carries a
    description, and each type schema pins properties.type.const to its file
    name and refers to cloudevent.schema.json;
  * every event type of DESIGN.md §2 (EVENT_TYPES below) has a schema, and no
    schema exists for a type that is not in that list;
  * every fixtures/valid/*.json passes the schema of its own `type` (file name
    <type>.json or <type>--<variant>.json) and every type has a valid fixture;
  * every fixtures/invalid/*.json is rejected (not JSON, not an object, a type
    without schema, or a schema violation);
  * every non-empty line of each --jsonl file (e.g. the C encoder's output, one
    event per line) is an event that passes its type's schema.
An event passes its type's schema and the rules between its fields that JSON
Schema cannot say (RELATIONS below, e.g. drain.progress's calls_left never
above calls_at_start).
Then one summary line; exit status 1 on any failure, 0 otherwise, 2 on usage.

Runs offline: every $ref is resolved from the schemas directory (a resolver
store keyed by $id); remote references are refused. Uses Debian's
python3-jsonschema (4.10); run it with /usr/bin/python3.
"""
import argparse
import datetime
import json
import os
import re
import sys

try:
    from jsonschema import Draft202012Validator, FormatChecker, RefResolver
    from jsonschema.exceptions import RefResolutionError
except ImportError:  # pragma: no cover - environment problem, not a test failure
    sys.stderr.write("validate.py: python3-jsonschema is missing; apt-get install python3-jsonschema "
                     "and run with /usr/bin/python3\n")
    sys.exit(2)

SCHEMA_BASE = "https://sipdrain.dev/schemas/events/"
ENVELOPE_FILE = "cloudevent.schema.json"

# The event types of DESIGN.md §2 ("Kafka topics" table). Keep this list in
# step with that table: a type added there needs a schema here and vice versa.
EVENT_TYPES = [
    # sipdrain.drain.commands
    "drain.start", "drain.cancel", "drain.resume",
    # sipdrain.drain.events
    "drain.started", "drain.progress", "drain.completed", "drain.cancelled", "drain.rejected",
    "drain.resumed",
    # sipdrain.edge.control
    "edge.drain", "edge.resume", "edge.shutdown", "call.originate",
    # sipdrain.edge.status
    "edge.status",
    # sipdrain.call.events
    "call.offered", "call.established", "call.ended", "call.rejected", "call.queued",
    "call.dequeued",
    # sipdrain.agent.commands
    "agent.login", "agent.logout", "agent.ready", "agent.not_ready", "agent.acw_complete",
    "agent.make_call",
    # sipdrain.agent.events
    "EventAgentLogin", "EventAgentLogout", "EventAgentReady", "EventAgentNotReady", "EventError",
]

MAX_MSG = 300  # characters of a validator message printed per error
MAX_ERRORS_PER_EVENT = 5


class Report:
    """Collects failures and counts; prints each failure as it happens."""

    def __init__(self, verbose):
        self.verbose = verbose
        self.failures = 0
        self.schemas_ok = 0
        self.valid_ok = 0
        self.invalid_rejected = 0
        self.jsonl_ok = 0

    def fail(self, where, msg):
        self.failures += 1
        print("FAIL %s: %s" % (where, msg))

    def info(self, where, msg):
        if self.verbose:
            print("ok   %s: %s" % (where, msg))


def short(msg):
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= MAX_MSG else msg[:MAX_MSG - 3] + "..."


class OfflineResolver(RefResolver):
    """A RefResolver that never touches the network."""

    def resolve_remote(self, uri):
        raise RefResolutionError("remote reference %s is not in the schemas directory (offline)" % uri)


RFC3339_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value):
    """Fallback date-time check (RFC 3339 incl. calendar validity) used when
    jsonschema's optional rfc3339-validator is not installed."""
    if not isinstance(value, str):
        return True
    m = RFC3339_RE.match(value)
    if not m:
        return False
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        datetime.datetime(y, mo, d, h, mi, min(s, 59))
    except ValueError:
        return False
    off = m.group(8)
    if off not in ("Z", "z"):
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            return False
    return True


UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def make_format_checker():
    """FormatChecker with uuid and date-time guaranteed to be checked.

    jsonschema registers date-time only when rfc3339-validator is importable
    (not on Debian 12 by default); the schemas also carry patterns, so this is
    belt and braces."""
    fc = FormatChecker()
    if "date-time" not in fc.checkers:
        fc.checks("date-time")(_rfc3339)
    if "uuid" not in fc.checkers:
        fc.checks("uuid")(lambda v: not isinstance(v, str) or bool(UUID_RE.match(v)))
    # Self-test: a format checker that lets these through would make the
    # whole run meaningless.
    assert not fc.conforms("3f1c2a9e6b0d4c8e9a571d2e3f4a5b6c00", "uuid")
    assert not fc.conforms("2026-02-30T06:40:00.123Z", "date-time")
    assert fc.conforms("2026-11-26T06:40:00.123Z", "date-time")
    return fc


# Subschemas under these keywords only constrain fields declared elsewhere
# (e.g. {"if": {"properties": {"scope": {"const": "edge"}}}}), so they need
# no descriptions of their own.
CONSTRAINT_ONLY = ("if", "then", "else", "not", "dependentSchemas")


def lint_descriptions(node, path, out):
    """Every field a schema declares (each entry of a `properties` map) must
    carry a description."""
    if isinstance(node, dict):
        for key, val in node.items():
            if key in CONSTRAINT_ONLY:
                continue
            if key == "properties" and isinstance(val, dict):
                for name, sub in val.items():
                    if not isinstance(sub, dict) or "description" not in sub:
                        out.append("%s/properties/%s has no description" % (path, name))
            lint_descriptions(val, "%s/%s" % (path, key), out)
    elif isinstance(node, list):
        for i, val in enumerate(node):
            lint_descriptions(val, "%s/%d" % (path, i), out)


def load_schemas(schema_dir, rep):
    """Load and check every *.schema.json. Returns ({type: schema}, store)."""
    by_type = {}
    store = {}
    try:
        names = sorted(n for n in os.listdir(schema_dir) if n.endswith(".schema.json"))
    except OSError as e:
        rep.fail(schema_dir, "cannot list schemas: %s" % e)
        return by_type, store
    if ENVELOPE_FILE not in names:
        rep.fail(os.path.join(schema_dir, ENVELOPE_FILE), "envelope schema missing")
    for name in names:
        path = os.path.join(schema_dir, name)
        try:
            with open(path, encoding="utf-8") as f:
                schema = json.load(f)
        except (OSError, ValueError) as e:
            rep.fail(path, "not readable JSON: %s" % short(e))
            continue
        if not isinstance(schema, dict):
            rep.fail(path, "schema is not an object")
            continue
        problems = []
        usable = True
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as e:  # SchemaError; keep going with the others
            problems.append("not a valid 2020-12 schema: %s" % short(getattr(e, "message", e)))
            usable = False
        if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
            problems.append("$schema is not https://json-schema.org/draft/2020-12/schema")
        if schema.get("$id") != SCHEMA_BASE + name:
            problems.append("$id is %r, expected %r" % (schema.get("$id"), SCHEMA_BASE + name))
        lint = []
        lint_descriptions(schema, "#", lint)
        problems.extend(lint)
        if name != ENVELOPE_FILE:
            typ = name[: -len(".schema.json")]
            const = schema.get("properties", {}).get("type", {}).get("const")
            if const != typ:
                problems.append("properties.type.const is %r, expected %r" % (const, typ))
            if {"$ref": ENVELOPE_FILE} not in schema.get("allOf", []):
                problems.append('allOf does not contain {"$ref": "%s"}' % ENVELOPE_FILE)
            if "data" not in schema.get("properties", {}):
                problems.append("no properties.data schema")
            if typ not in EVENT_TYPES:
                problems.append("type %r is not in DESIGN.md §2 (EVENT_TYPES in validate.py)" % typ)
        for p in problems:
            rep.fail(path, p)
        # A schema that is valid 2020-12 but fails a house rule (description,
        # $id, ...) is still used for the events, so the fixture results stay
        # meaningful; the failure above already fails the run.
        if usable and isinstance(schema.get("$id"), str):
            store[schema["$id"]] = schema
            if name != ENVELOPE_FILE:
                by_type[name[: -len(".schema.json")]] = schema
        if not problems:
            rep.schemas_ok += 1
    for typ in EVENT_TYPES:
        if typ not in by_type and not os.path.exists(os.path.join(schema_dir, typ + ".schema.json")):
            rep.fail(os.path.join(schema_dir, typ + ".schema.json"),
                     "missing: DESIGN.md §2 lists type %s" % typ)
    return by_type, store


# Rules between two integer fields of data that JSON Schema cannot express:
# type -> [(field, must be <= field)]. Each is also said in the field's
# description in the schema.
RELATIONS = {
    "drain.progress": [("calls_left", "calls_at_start"), ("calls_queued", "calls_left"),
                       ("agents_logged_in", "agents_at_start")],
}


def relation_errors(event):
    data = event.get("data")
    out = []
    if not isinstance(data, dict):
        return out
    for small, big in RELATIONS.get(event.get("type"), []):
        a, b = data.get(small), data.get(big)
        if isinstance(a, int) and isinstance(b, int) and a > b:
            out.append("data: %s %d exceeds %s %d" % (small, a, big, b))
    return out


class EventChecker:
    def __init__(self, by_type, store):
        self.by_type = by_type
        self.store = store
        self.fc = make_format_checker()
        self.validators = {}
        for typ, schema in by_type.items():
            resolver = OfflineResolver(base_uri=schema["$id"], referrer=schema, store=store)
            self.validators[typ] = Draft202012Validator(schema, resolver=resolver, format_checker=self.fc)

    def errors(self, event):
        """List of problems with one decoded event ([] = valid)."""
        if not isinstance(event, dict):
            return ["event is not a JSON object"]
        typ = event.get("type")
        if not isinstance(typ, str):
            return ["event has no string `type`"]
        v = self.validators.get(typ)
        if v is None:
            return ["no schema for type %r" % typ]
        out = []
        try:
            errs = sorted(v.iter_errors(event), key=lambda e: (list(e.absolute_path), e.message))
        except RefResolutionError as e:
            return ["schema reference error: %s" % short(e)]
        for e in errs[:MAX_ERRORS_PER_EVENT]:
            where = "/".join(str(p) for p in e.absolute_path) or "(event)"
            out.append("%s: %s" % (where, short(e.message)))
        if len(errs) > MAX_ERRORS_PER_EVENT:
            out.append("... and %d more errors" % (len(errs) - MAX_ERRORS_PER_EVENT))
        return out + relation_errors(event)


def _no_duplicates(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError("duplicate key %r" % k)
        seen[k] = v
    return seen


def _no_constant(name):
    raise ValueError("%s is not JSON" % name)


def strict_loads(raw):
    """json.loads that refuses invalid UTF-8, NaN/Infinity (not JSON; jansson
    refuses them too) and duplicate keys (always a producer bug; jansson would
    silently keep the last one unless JSON_REJECT_DUPLICATES is set)."""
    return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def load_json(path):
    """(value, None) or (None, reason)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        return strict_loads(raw), None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return None, "invalid JSON: %s" % short(e)


def json_files(d):
    try:
        return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".json"))
    except OSError:
        return None


def check_fixtures(fixture_dir, chk, rep):
    valid_dir = os.path.join(fixture_dir, "valid")
    invalid_dir = os.path.join(fixture_dir, "invalid")
    covered = set()
    files = json_files(valid_dir)
    if files is None:
        rep.fail(valid_dir, "no such directory")
        files = []
    for path in files:
        stem = os.path.basename(path)[: -len(".json")].split("--", 1)[0]
        event, err = load_json(path)
        if err:
            rep.fail(path, err)
            continue
        problems = chk.errors(event)
        typ = event.get("type") if isinstance(event, dict) else None
        if typ != stem:
            problems.append("file name says type %r but the event's type is %r "
                            "(name valid fixtures <type>.json or <type>--<variant>.json)" % (stem, typ))
        for p in problems:
            rep.fail(path, p)
        if not problems:
            covered.add(typ)
            rep.valid_ok += 1
            rep.info(path, "valid %s" % typ)
    for typ in EVENT_TYPES:
        if typ not in covered and chk.validators.get(typ) is not None:
            rep.fail(os.path.join(valid_dir, typ + ".json"), "no passing valid fixture for type %s" % typ)

    files = json_files(invalid_dir)
    if files is None:
        rep.fail(invalid_dir, "no such directory")
        files = []
    for path in files:
        event, err = load_json(path)
        problems = [err] if err else chk.errors(event)
        if problems:
            rep.invalid_rejected += 1
            rep.info(path, "rejected: %s" % " | ".join(problems))
        else:
            rep.fail(path, "invalid fixture was accepted by the schema of type %r" % event.get("type"))


def check_jsonl(path, chk, rep):
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except OSError as e:
        rep.fail(path, "cannot read: %s" % e)
        return
    events = 0
    for no, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        events += 1
        where = "%s:%d" % (path, no)
        try:
            event = strict_loads(raw)
        except (UnicodeDecodeError, ValueError) as e:
            rep.fail(where, "invalid JSON: %s" % short(e))
            continue
        problems = chk.errors(event)
        for p in problems:
            rep.fail(where, p)
        if not problems:
            rep.jsonl_ok += 1
    if events == 0:
        rep.fail(path, "no events in file")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--schemas", required=True, help="directory holding *.schema.json (schemas/events)")
    ap.add_argument("--fixtures", help="directory with valid/ and invalid/ sample events (tests/fixtures/events)")
    ap.add_argument("--jsonl", nargs="+", default=[], metavar="FILE",
                    help="files with one event per line that must all be valid")
    ap.add_argument("-v", "--verbose", action="store_true", help="also print why each invalid fixture was rejected")
    args = ap.parse_args(argv)

    rep = Report(args.verbose)
    by_type, store = load_schemas(args.schemas, rep)
    chk = EventChecker(by_type, store)
    if args.fixtures:
        check_fixtures(args.fixtures, chk, rep)
    for path in args.jsonl:
        check_jsonl(path, chk, rep)

    summary = "schemas: %d ok; fixtures: %d valid ok, %d invalid rejected; jsonl: %d events ok" % (
        rep.schemas_ok, rep.valid_ok, rep.invalid_rejected, rep.jsonl_ok)
    if rep.failures:
        summary += "; %d FAILURES" % rep.failures
    print(summary)
    return 1 if rep.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
