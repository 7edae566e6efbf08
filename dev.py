#!/usr/bin/env python3
"""Set up a virtual environment and run Onefold's two everyday commands. Needs only Python 3.11+.

    python3 dev.py demo    # install, start Onefold with demo data, print URL, admin token and a write key
    python3 dev.py test    # install with dev tools (and Debian's chromium, postgresql, Java), then ruff, mypy, tests

Extra arguments after the command go to `onefold demo` or to pytest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_env(extras: str) -> None:
    """Create .venv and install the package; skipped when pyproject.toml has not changed since."""
    if sys.version_info < (3, 11):  # noqa: UP036 (this script may be started by an older python3)
        sys.exit(f"Onefold needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.create(VENV, with_pip=True)
    target = f".[{extras}]" if extras else "."
    print(f"installing onefold{f'[{extras}]' if extras else ''} into .venv ...", flush=True)
    subprocess.run([str(BIN / "python"), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(BIN / "python"), "-m", "pip", "install", "-q", "-e", target], check=True, cwd=ROOT)
    stamp.write_text(digest)


# What the tests need beyond Python, from Debian's packages: the console's browser tests drive Chromium, the
# audience compiler's tests run on PostgreSQL (tests/services.py starts its cluster) and on Spark (Java 17).
DEBIAN_NEEDS = (("chromium", "chromium"), ("pg_ctlcluster", "postgresql"), ("java", "openjdk-17-jre-headless"))


def ensure_debian_packages() -> None:
    """Install the Debian packages whose commands are missing."""
    missing = [package for command, package in DEBIAN_NEEDS if not shutil.which(command)]
    if not missing:
        return
    apt = shutil.which("apt-get")
    if apt is None:
        sys.exit(f"the tests need {', '.join(missing)}; install them with your package manager")
    sudo = [] if os.geteuid() == 0 else ["sudo"]

    def apt_get(*args: str) -> int:
        return subprocess.run([*sudo, apt, *args], stdout=subprocess.DEVNULL).returncode

    print(f"installing Debian's {', '.join(missing)} for the tests ...", flush=True)
    if apt_get("install", "-y", "-q", *missing) != 0 and (
        apt_get("update", "-q") != 0 or apt_get("install", "-y", "-q", *missing) != 0
    ):
        sys.exit(f"could not install {', '.join(missing)} with apt-get; install them by hand and run the tests again")


def run(*command: str) -> int:
    print("$", " ".join(command), flush=True)
    return subprocess.run(command, cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        ensure_env("")
        os.execv(str(BIN / "onefold"), [str(BIN / "onefold"), "demo", *rest])
    ensure_env("dev")
    ensure_debian_packages()
    for check in (
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "ruff"), "format", "--check", "."],
        [str(BIN / "mypy")],
    ):
        if run(*check) != 0:
            return 1
    return run(str(BIN / "python"), "-m", "pytest", *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
