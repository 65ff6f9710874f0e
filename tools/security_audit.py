"""Security checks of the code and the dependencies (`make bandit`, `make audit`).

    python -m tools.security_audit bandit      # bandit on bot/ and actions/
    python -m tools.security_audit pip-audit   # pip-audit on the three lock files

bandit fails on findings of high severity and high confidence. pip-audit looks up every
pinned package of requirements/app.txt, dev.txt and rasa.txt in PyPI's vulnerability
data (`/pypi/<name>/<version>/json`); it fails on a known vulnerability, and it also fails
- saying so - when that data could not be read (pip-audit itself then reports "No known
vulnerabilities found" and exits 0, which would be a silent pass).

Exit codes: 0 clean, 1 findings, 2 could not check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOCK_FILES = ("requirements/app.txt", "requirements/dev.txt", "requirements/rasa.txt")
CODE = ("bot", "actions")
NOT_AUDITED = "could not be audited"


def bandit() -> int:
    command = [
        str(BIN / "bandit"),
        "-q",
        "-r",
        *CODE,
        "--severity-level",
        "high",
        "--confidence-level",
        "high",
    ]
    result = subprocess.run(command, cwd=ROOT, check=False)
    if result.returncode == 0:
        print(f"bandit: no high-severity, high-confidence findings in {', '.join(CODE)}.")
    return 1 if result.returncode else 0


def _pip_audit(lock_file: str) -> tuple[list[str], int, int] | str:
    """(vulnerabilities, packages audited, packages skipped) or why it could not run."""
    command = [
        str(BIN / "pip-audit"),
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--format",
        "json",
        "-r",
        lock_file,
    ]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    try:
        report = json.loads(result.stdout)
    except ValueError:
        return f"pip-audit failed (exit {result.returncode}): {result.stderr.strip()[-500:]}"
    found, audited, skipped = [], 0, 0
    for dependency in report.get("dependencies", []):
        if NOT_AUDITED in str(dependency.get("skip_reason", "")):
            skipped += 1
            continue
        audited += 1
        for vulnerability in dependency.get("vulns", []):
            fixes = ", ".join(vulnerability.get("fix_versions") or []) or "no fix yet"
            found.append(
                f"{dependency['name']} {dependency['version']}: {vulnerability['id']} "
                f"(fixed in {fixes})"
            )
    return found, audited, skipped


def pip_audit() -> int:
    status = 0
    for lock_file in LOCK_FILES:
        outcome = _pip_audit(lock_file)
        if isinstance(outcome, str):
            print(f"pip-audit {lock_file}: {outcome}", file=sys.stderr)
            status = max(status, 2)
            continue
        found, audited, skipped = outcome
        for line in found:
            print(f"pip-audit {lock_file}: VULNERABLE {line}", file=sys.stderr)
        if found:
            status = 1
        if skipped:
            print(
                f"pip-audit {lock_file}: COULD NOT CHECK {skipped} of {audited + skipped} "
                "packages: PyPI's vulnerability data (https://pypi.org/pypi/<name>/<version>/"
                "json) did not answer for them. Run `make audit` where pypi.org is reachable.",
                file=sys.stderr,
            )
            status = status if status == 1 else 2  # a finding outranks "could not check"
        elif not found:
            print(f"pip-audit {lock_file}: {audited} packages, no known vulnerabilities.")
    return status


def main(argv: list[str]) -> int:
    checks = {"bandit": bandit, "pip-audit": pip_audit}
    if len(argv) != 1 or argv[0] not in checks:
        print(f"usage: python -m tools.security_audit {{{'|'.join(checks)}}}", file=sys.stderr)
        return 2
    return checks[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
