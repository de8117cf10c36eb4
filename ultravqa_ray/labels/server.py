"""Label Studio as its own service: installed into its own virtual environment, run on loopback.

Label Studio pins its own dependencies (Django and friends), so it is never a dependency of this
package: :func:`install` creates ``~/.cache/ultravqa-ray/label-studio-<version>`` (or
``$ULTRAVQA_LABEL_STUDIO_HOME``) once and reuses it; today it needs ``sentry-sdk<3`` to start.
:class:`LabelStudioProcess` starts it on 127.0.0.1 with its data in a folder of your choice, local
files serving on, and waits for ``/health``. The first start applies its database migrations
(~45 s here); later starts on the same data folder are quicker.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)

VERSION = "1.23.2"
REQUIREMENTS = (f"label-studio=={VERSION}", "sentry-sdk<3")
_MARKER = ".ultravqa-installed"


class ServerError(OSError):
    """Label Studio could not be installed or started; the message says why (and where the log is)."""


def default_home() -> Path:
    """Where the Label Studio environment lives (shared by the CLI and the tests)."""
    if os.environ.get("ULTRAVQA_LABEL_STUDIO_HOME"):
        return Path(os.environ["ULTRAVQA_LABEL_STUDIO_HOME"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ultravqa-ray" / f"label-studio-{VERSION}"


def executable(home: Path | None = None) -> Path:
    return (home or default_home()) / "bin" / "label-studio"


def install(home: Path | None = None, *, quiet: bool = True) -> Path:
    """Create the environment if it is not there yet (idempotent, safe to run concurrently)."""
    home = home or default_home()
    home.parent.mkdir(parents=True, exist_ok=True)
    wanted = "\n".join(REQUIREMENTS) + "\n"
    with open(home.parent / f".{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second installer waits for the first
        marker = home / _MARKER
        if marker.exists() and marker.read_text() == wanted and executable(home).exists():
            return executable(home)
        shutil.rmtree(home, ignore_errors=True)
        log.info("installing %s into %s (about a minute and a half)", " ".join(REQUIREMENTS), home)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(home)], check=True)
        flags = ["--quiet", "--disable-pip-version-check"] if quiet else []
        result = subprocess.run(
            [str(home / "bin" / "python"), "-m", "pip", "install", *flags, *REQUIREMENTS],
            capture_output=quiet,
            text=True,
        )
        if result.returncode != 0:
            tail = (result.stderr or "").strip().splitlines()[-1:] if quiet else []
            raise ServerError(
                f"installing Label Studio failed (pip exit {result.returncode}): {' '.join(tail)}"
            )
        marker.write_text(wanted)
    return executable(home)


class LabelStudioProcess:
    """``label-studio start`` on 127.0.0.1:``port``, its data in ``data_dir``.

    ``username``/``password`` create the first (owner) account on a new data folder.
    ``files_root`` is the document root of the local-files route (videos must lie under it).
    """

    def __init__(self, data_dir: Path, port: int, *, username: str, password: str, files_root: str = "/",
                 home: Path | None = None, log_path: Path | None = None):  # fmt: skip
        self.data_dir, self.port = Path(data_dir), port
        self.username, self.password, self.files_root = username, password, files_root
        self.home, self.log_path = home, log_path or Path(data_dir) / "label-studio.log"
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [str(executable(self.home)), "start", "--no-browser", "--internal-host", "127.0.0.1",
                "--port", str(self.port), "--username", self.username, "--password", self.password]  # fmt: skip

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": self.files_root,
            "LABEL_STUDIO_HOST": self.url,
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "COLLECT_ANALYTICS": "false",
            "LATEST_VERSION_CHECK": "false",  # no call to pypi.org at start (CI has no internet)
        }

    def start(self, timeout_s: float = 600.0) -> LabelStudioProcess:
        if not executable(self.home).exists():
            raise ServerError(
                f"Label Studio is not installed at {executable(self.home)}: run 'ultravqa-ray label install'"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                        env=self.environment(), start_new_session=True)  # fmt: skip
        out.close()
        (self.data_dir / "label-studio.pid").write_text(f"{self.process.pid}\n")  # its process group id too
        self.wait_healthy(timeout_s)
        return self

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(
                    f"Label Studio exited with status {self.process.returncode} (see {self.log_path}): {self._last_line()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise ServerError(
            f"Label Studio did not answer {self.url}/health within {timeout_s:g} s (see {self.log_path})"
        )

    def _last_line(self) -> str:
        lines = (
            self.log_path.read_text(errors="replace").strip().splitlines() if self.log_path.exists() else []
        )
        return lines[-1] if lines else ""

    def wait(self) -> int:
        return self.process.wait() if self.process else 0

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the server's process group without waiting (safe in a signal handler)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # start_new_session: the server and any worker it forks form one process group.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
