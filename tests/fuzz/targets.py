"""Hostile input for every way data gets in, and the properties each must keep, shared by the suite and the drill.

Targets: ``contacts import``/``leads import`` of CSV and JSONL files (encodings, BOMs, delimiters, huge fields,
wrong types, absurd nesting and magnitudes, formula injection) and every CLI command's arguments. The local API's
bodies are fuzzed from its OpenAPI document in ``tests/api/test_api_schema.py``.

Properties: no traceback (an unexpected exception fails the check), an exit code the CLI documents, every refusal
naming the field and the reason, and the store unchanged by what was refused: the records an import reports as
created or updated are exactly the ones that changed.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from crm_desktop.app.people import PeopleQuery, PeopleService
from crm_desktop.app.workspace import Workspace
from crm_desktop.cli import build_parser, main
from crm_desktop.domain.outcomes import RecordObject

#: Exit codes the CLI documents: ok, partly failed, usage or configuration, authentication.
DOCUMENTED_EXITS = {0, 1, 2, 3}

#: Emails drawn again and again, so that later files update what earlier ones created.
EMAIL_POOL = [f"person{n}@example.com" for n in range(8)] + ["Person0@Example.COM", " person1@example.com "]
COLUMNS = [
    "email", "Email", "E-mail Address", " first name ", "firstName", "lastName", "company", "phone",
    "twitter_username", "twitter_followers", "instagram_url", "linkedin_username", "source", "status",
    "engagementScore", "notes", "", "email ",
]
#: Values that have broken parsers and spreadsheets before: formulas, magnitudes, control and bidi characters.
HOSTILE_CELLS = [
    "=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1", "=HYPERLINK(\"http://x\")",
    "1e400", "-1e400", "1e-400", "NaN", "Infinity", "-0", "9" * 400, "0x1F", "١٢٣", "\x00", "\x1b[31m",
    "🙂" * 60, "a\u0301", "\u202eevil", "null", "[]", "{}", '"', "''", ",", ";", "\n", " ", "x" * 300_000,
    "+1 415 555 0132", "+999999999999999999", "https://x.com/ann", "https://linkedin.com/in/", "javascript:alert(1)",
]
cells = st.one_of(
    st.text(max_size=30), st.sampled_from(HOSTILE_CELLS), st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(EMAIL_POOL),
)
emails = st.one_of(st.sampled_from(EMAIL_POOL), st.text(max_size=30), st.sampled_from(HOSTILE_CELLS),
                   st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.(com|org|io)", fullmatch=True))
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252", "utf-32"]


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A CSV file as bytes: any header (an email column most of the time), ragged rows, any delimiter and encoding."""
    header = draw(st.lists(st.one_of(st.sampled_from(COLUMNS), st.text(max_size=12)), min_size=0, max_size=8))
    if draw(st.integers(0, 9)) > 0:
        header.insert(draw(st.integers(0, len(header))), draw(st.sampled_from(["email", "Email", "E-mail Address"])))
    rows = draw(st.lists(st.lists(cells, max_size=len(header) + 2), max_size=6))
    for row in rows:  # most rows name someone
        if row and draw(st.booleans()) and header:
            row[0 if "email" not in header else header.index("email") % len(row)] = draw(emails)
    text = io.StringIO()
    writer = csv.writer(text, delimiter=draw(st.sampled_from([",", ";", "\t", "|"])),
                        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
    writer.writerow(header)
    writer.writerows(rows)
    body = text.getvalue()
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200)) + body.encode()  # garbage bytes in front
    return body.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")


json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**30, max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20), st.sampled_from(HOSTILE_CELLS),
)
json_values = st.recursive(json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
RECORD_KEYS = ["email", "firstName", "lastName", "first_name", "company", "phone", "socialProfiles",
               "social_profiles", "customFields", "socialContext", "source", "status", "engagementScore"]


@st.composite
def jsonl_lines(draw: st.DrawFn) -> str:
    """One JSONL line: a record with hostile values, something that is not an object, or no JSON at all."""
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        record = draw(st.dictionaries(st.one_of(st.sampled_from(RECORD_KEYS), st.text(max_size=8)), json_values,
                                      max_size=6))
        if draw(st.booleans()):
            record["email"] = draw(emails)
        return json.dumps(record)
    if kind == 6:
        depth = draw(st.sampled_from([50, 900, 5000, 100_000]))
        return '{"email": "deep@example.com", "customFields": {"x": ' + "[" * depth + "]" * depth + "}}"
    if kind == 7:
        return json.dumps(draw(json_values))
    return draw(st.sampled_from(["{", "}", "not json", '{"email": "a@b.co",}', "\ufeff{}", "", "   ", "NaN"]))


@st.composite
def jsonl_files(draw: st.DrawFn) -> bytes:
    """A JSON Lines file as bytes."""
    body = "\n".join(draw(st.lists(jsonl_lines(), max_size=6)))
    return body.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16"])), errors="replace")


@st.composite
def import_cases(draw: st.DrawFn) -> ImportCase:
    """One hostile import: contacts or leads, CSV or JSONL, with or without ``--blank-clears``."""
    suffix = draw(st.sampled_from([".csv", ".jsonl"]))
    payload = draw(csv_files() if suffix == ".csv" else jsonl_files())
    return ImportCase(draw(st.sampled_from([RecordObject.CONTACT, RecordObject.LEAD])), suffix, payload,
                      draw(st.booleans()))


@dataclass(frozen=True)
class ImportCase:
    """What one generated import sends."""

    obj: RecordObject
    suffix: str
    payload: bytes
    blank_clears: bool

    def __repr__(self) -> str:  # shrunk failures print the file as text
        return f"ImportCase({self.obj.value}, {self.suffix}, blank_clears={self.blank_clears}, {self.payload[:2000]!r})"


@dataclass
class Outcome:
    """What one CLI call did: exit code and output."""

    code: int
    out: str
    err: str


def call(argv: list[str]) -> Outcome:
    """Run ``crm-desktop ARGV`` in-process with nothing on stdin; any exception other than argparse's SystemExit
    propagates (a failure)."""
    out, err = io.StringIO(), io.StringIO()
    stdin = sys.stdin
    sys.stdin = io.StringIO("")  # a command that reads a secret finds nothing typed: it must say so, not hang
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exited:
                code = exited.code if isinstance(exited.code, int) else 2
    finally:
        sys.stdin = stdin
    return Outcome(code, out.getvalue(), err.getvalue())


def snapshot(data_dir: Path, obj: RecordObject) -> dict[str, dict[str, Any]]:
    """Every stored contact or lead, by email, as its wire form."""
    workspace = Workspace.open(data_dir)
    try:
        people = PeopleService(workspace.database, workspace.social, workspace.sync)
        emails = [line.email for line in people.page(PeopleQuery(obj=obj), None, 100_000)]
        store = workspace.contacts if obj is RecordObject.CONTACT else workspace.leads
        return {email: record.to_wire() for email, record in store.find_many(emails).items()}
    finally:
        workspace.close()


@dataclass
class Tally:
    """How many examples a target ran and how they ended."""

    examples: int = 0
    by_exit: dict[int, int] = field(default_factory=dict)
    refusals: int = 0

    def add(self, code: int, refusals: int = 0) -> None:
        self.examples += 1
        self.by_exit[code] = self.by_exit.get(code, 0) + 1
        self.refusals += refusals


def check_import(data_dir: Path, work_dir: Path, case: ImportCase, tally: Tally | None = None) -> None:
    """Import the case through the CLI and check the properties (assertion errors say which one broke)."""
    path = work_dir / f"people{case.suffix}"
    path.write_bytes(case.payload)
    before = snapshot(data_dir, case.obj)
    noun = "contacts" if case.obj is RecordObject.CONTACT else "leads"
    argv = ["--data-dir", str(data_dir), noun, "import", str(path), "--json"]
    outcome = call([*argv, "--blank-clears"] if case.blank_clears else argv)
    assert outcome.code in DOCUMENTED_EXITS, outcome
    assert "Traceback" not in outcome.err, outcome.err
    report = json.loads(outcome.out)
    after = snapshot(data_dir, case.obj)
    if "error" in report:  # the whole file refused: a sentence, and nothing written
        message = report["error"]["message"]
        assert (message and path.name in message) or "cannot read" in message, message
        assert after == before
        if tally:
            tally.add(outcome.code, 1)
        return
    for refused in report["refused"]:
        assert refused["line"] >= 1, refused
        for problem in refused["problems"]:
            assert problem["field"].strip() and problem["reason"].strip(), refused
    changed = {email for email in after.keys() | before.keys() if after.get(email) != before.get(email)}
    written = {record["email"] for record in report["records"] if record["outcome"] in ("created", "updated")}
    assert changed == written, (changed, written)
    assert not before.keys() - after.keys(), "an import deleted records"
    if tally:
        tally.add(outcome.code, len(report["refused"]))


# -- CLI arguments -------------------------------------------------------------------------------------------------
#: Commands that would serve, open a window or start a long-running process: not fuzzed here (they have their own
#: tests), since a generated call could block the run.
NOT_FUZZED = {("serve",), ("sandbox",), ("demo",), ("integration", "login"), ("integrations", "login")}
HOSTILE_ARGS = [
    "", "-", "--", "--json", "--help", "-h", "--all", "--due", "--dry-run", "--force", "0", "-1",
    "99999999999999999999", "nan", "1e400", "crm", "../../etc/passwd", "/dev/null", "/", "\x00", "\u202e", "🙂",
    "x" * 5000, "=cmd|' /C calc'!A0",
    "--limit", "--file", "--email", "--name", "--provider", "hubspot", "salesforce", "pipedrive", "http://evil.example",
    "https://127.0.0.1:1", "--secret", "--secret-stdin", "contact", "lead", "push", "pull", "both", "manual",
]


def command_paths(parser: Any = None, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], list[str]]]:
    """Every runnable command path with the option strings it takes, read from the parser itself."""
    import argparse

    parser = parser or build_parser()
    found: list[tuple[tuple[str, ...], list[str]]] = []
    options = [s for action in parser._actions for s in action.option_strings]
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        return [(prefix, options)]
    for name, sub in subparsers[0].choices.items():
        if (*prefix, name) in NOT_FUZZED:
            continue
        found.extend(command_paths(sub, (*prefix, name)))
    return found


@st.composite
def cli_calls(draw: st.DrawFn, paths: list[tuple[tuple[str, ...], list[str]]]) -> list[str]:
    """A command path followed by a jumble of its own options and hostile values."""
    path, options = draw(st.sampled_from(paths))
    tail = draw(st.lists(st.one_of(st.sampled_from(options or ["--json"]), st.sampled_from(HOSTILE_ARGS),
                                   st.text(max_size=12)), max_size=6))
    return [*path, *tail]


def check_cli_call(data_dir: Path, argv: list[str], tally: Tally | None = None) -> None:
    """Run one generated command line: a documented exit code, something said, and no traceback."""
    outcome = call(["--data-dir", str(data_dir), *argv])
    assert outcome.code in DOCUMENTED_EXITS, (argv, outcome)
    assert "Traceback" not in outcome.err, (argv, outcome.err)
    if outcome.code == 2:
        assert (outcome.err + outcome.out).strip(), (argv, "a usage error must say what is wrong")
    if tally:
        tally.add(outcome.code)


@dataclass
class DrillResult:
    """A target's run in the drill: the tally and the first failures (input and what broke)."""

    tally: Tally = field(default_factory=Tally)
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, text: str) -> None:
        """Count a failure; keep the first ones' input and what broke."""
        self.failed += 1
        if len(self.failures) < 20:
            self.failures.append(text)


def run_many(strategy: st.SearchStrategy[Any], check: Any, count: int, seed: int) -> DrillResult:
    """Check ``count`` generated examples outside pytest, recording failures instead of stopping at the first."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    result = DrillResult()

    @hypothesis_seed(seed)
    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def each(example: Any) -> None:
        try:
            check(example, result.tally)
        except Exception as exc:  # the drill counts and lists failures; the suite fails on the first
            result.fail(f"{example!r:.600}: {type(exc).__name__}: {exc!s:.600}")

    each()
    return result
