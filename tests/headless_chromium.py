"""Headless Chromium for the tests that open a report page: where it is, the page's DOM after its
scripts ran, and the console messages it logged."""

import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
NO_CHROMIUM = "headless Chromium not installed (Debian package 'chromium'; .ci/run installs it)"


def dump_dom(page: Path, profile_dir: Path) -> subprocess.CompletedProcess:
    """Chromium run on ``page`` with no network and 5 s of virtual time: stdout is the DOM after
    load, stderr the browser's log (console messages included)."""
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile_dir}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def console_messages(log: str) -> list[str]:
    """The console messages and uncaught errors in a ``dump_dom`` log."""
    return [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]
