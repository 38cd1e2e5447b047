"""Fuzz drill: many more hostile inputs per target than the suite runs, with counts of how each one ended.

Targets (the properties are those of ``tests/fuzz/targets.py`` and ``tests/api/test_api_schema.py``):
- ``import``: CSV and JSONL files into ``contacts import``/``leads import`` (encodings, BOMs, huge fields, wrong
  types, absurd nesting and magnitudes, formula injection): no traceback, refusals name field and reason, the
  records reported written are exactly the ones that changed;
- ``cli``: every command with a jumble of its options and hostile values: a documented exit code, no traceback;
- ``api``: the local API's operations with requests generated from its OpenAPI document: never a 500.

Run from the repository root::

    python -m bench.fuzz_drill                         # 10,000 examples per target
    python -m bench.fuzz_drill --examples 500 --target import --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import keyring

from tests.fuzz.targets import (
    DrillResult,
    Tally,
    call,
    check_cli_call,
    check_import,
    cli_calls,
    command_paths,
    import_cases,
    run_many,
)
from tests.support.memory_keyring import MemoryKeyring

TARGETS = ("import", "cli", "api")


def drill_import(work: Path, examples: int, seed: int) -> DrillResult:
    data_dir = work / "import-data"
    call(["--data-dir", str(data_dir), "integration", "list"])
    return run_many(import_cases(), lambda case, tally: check_import(data_dir, work, case, tally), examples, seed)


def drill_cli(work: Path, examples: int, seed: int) -> DrillResult:
    data_dir = work / "cli-data"
    return run_many(cli_calls(command_paths()), lambda argv, tally: check_cli_call(data_dir, argv, tally),
                    examples, seed)


def drill_api(work: Path, examples: int, seed: int) -> DrillResult:
    """The local API served on loopback with one HubSpot sandbox integration, its operations fuzzed in turn."""
    import httpx
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    from tests.api.test_api_schema import is_server_fault, send, served_on_hubspot

    result = DrillResult()

    def fuzz(operation: Any, url: str, auth: dict[str, str], count: int) -> None:
        @hypothesis_seed(seed)
        @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), known=st.booleans())
        def each(case: Any, known: bool) -> None:
            try:
                response = send(case, known, url, auth)
            except Exception as exc:
                result.fail(f"{operation.label}: {type(exc).__name__}: {exc!s:.300}")
                return
            result.tally.add(response.status_code)
            if is_server_fault(response.status_code):
                result.fail(f"{operation.label} {case.body!r:.300}: {response.status_code} {response.text:.300}")

        each()

    with served_on_hubspot(work / "api-data") as served:
        url = served.server.url
        schema = schemathesis.openapi.from_dict(httpx.get(f"{url}/openapi.json").json())
        auth = {"Authorization": f"Bearer {served.server.tokens.current()}"}
        operations = [found.ok() for found in schema.get_all_operations()]
        for operation in operations:
            fuzz(operation, url, auth, max(1, examples // len(operations)))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=10_000, help="examples per target (default 10,000)")
    parser.add_argument("--target", choices=TARGETS, action="append", help="only this target (repeatable)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    # Whatever a generated command does with secrets (api rotate, integration add) stays in this process.
    keyring.set_keyring(MemoryKeyring())
    drills = {"import": drill_import, "cli": drill_cli, "api": drill_api}
    report: dict[str, Any] = {"examplesPerTarget": args.examples, "seed": args.seed, "targets": {}}
    with tempfile.TemporaryDirectory(prefix="fuzz-drill-") as folder:
        for target in args.target or TARGETS:
            started = time.monotonic()
            result = drills[target](Path(folder), args.examples, args.seed)
            tally: Tally = result.tally
            report["targets"][target] = {
                "examples": tally.examples + result.failed, "failures": result.failed,
                "byOutcome": {str(k): v for k, v in sorted(tally.by_exit.items())},
                "refusals": tally.refusals, "seconds": round(time.monotonic() - started, 1),
                "firstFailures": result.failures[:5],
            }
            if not args.json:
                line = report["targets"][target]
                print(f"{target:>6}: {line['examples']:,} examples, {line['failures']} failures, outcomes "
                      f"{line['byOutcome']}, {line['refusals']:,} refusals, {line['seconds']} s", flush=True)
                for failure in result.failures[:5]:
                    print(f"        {failure}")
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 1 if any(t["failures"] for t in report["targets"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
