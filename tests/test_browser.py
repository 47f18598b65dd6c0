"""A real browser on the MLflow UI that ``sweeper ui`` starts, over a store a real sweep wrote.

Headless Chromium (Debian's ``chromium``, driven by Playwright; ``.ci/run`` installs both). A
browser that cannot start is a failure, never a skip: this is the test that the UI tells the
story (parent run, nested children, a plot that loads). Screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import sync_playwright

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parent.parent
GRID = ROOT / "configs" / "digits_svc_grid.yaml"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class UiProcess:
    """``sweeper ui`` in its own session; its stdout read by a thread (bounded waits only)."""

    def __init__(self, args: list[str], cwd: Path, *, sigint_ignored: bool = False) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sweeper", "ui", *args], cwd=cwd, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
            # what `sweeper ui &` in a script gets: SIGINT ignored, and so inherited
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return "\n".join(self.lines)
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"`sweeper ui` did not print {text!r} (exit {self.process.poll()}):\n" + "\n".join(self.lines))

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        """Also the MLflow server, which `sweeper ui` starts in a session of its own: a test
        that fails midway must not leave it running."""
        try:
            descendants = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        if self.group_alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        for child in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("browser")
    done = subprocess.run(
        [sys.executable, "-m", "sweeper", "run", str(GRID), "--n-trials", "4", "--n-jobs", "2",
         "--tracking-uri", f"sqlite:///{cwd}/mlflow.db"],
        cwd=cwd, capture_output=True, text=True, timeout=150, check=False,
    )
    assert done.returncode == 0, done.stderr
    return cwd


def test_mlflow_ui_shows_the_parent_its_children_and_a_plot(swept, tmp_path):
    port = free_port()
    ui = UiProcess(["digits_svc_grid", "--port", str(port)], cwd=swept)
    try:
        printed = ui.wait_for("press Ctrl-C to stop", timeout_s=120)
        experiment_url = re.search(r"experiment: (\S+)", printed).group(1)
        parent_url = re.search(r"parent run: (\S+)", printed).group(1)
        assert experiment_url.startswith(f"http://127.0.0.1:{port}/#/experiments/")
        parent_id = re.search(r"/runs/([0-9a-f]{32})", parent_url).group(1)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(experiment_url, timeout=60_000)
                parent_row = page.locator("[role=row]", has_text="digits_svc_grid")
                parent_row.first.wait_for(timeout=60_000)
                # nested children are collapsed under their parent: expand it
                parent_row.locator("button[data-component-id*='runnamecellrenderer']").first.click()
                for number in range(4):
                    page.get_by_text(f"trial-{number:04d}", exact=True).wait_for(timeout=30_000)
                page.screenshot(path=str(tmp_path / "experiment.png"))

                base = parent_url.partition("?")[0]
                page.goto(f"{base}/artifacts/plots/optimization_history.png?workflowType=machine_learning")
                image = page.locator("img[src^='blob:']").first
                image.wait_for(timeout=60_000)
                page.wait_for_function(
                    "img => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=30_000
                )
                width, height = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
                assert width > 300 and height > 200
                page.screenshot(path=str(tmp_path / "parent_artifact.png"))

                page.goto(parent_url)
                page.get_by_text("Best trial #", exact=False).first.wait_for(timeout=30_000)
                page.get_by_text("load_digits", exact=False).first.wait_for(timeout=30_000)  # dataset
                page.get_by_text("Logged models (1)", exact=True).wait_for(timeout=30_000)  # best model
                page.screenshot(path=str(tmp_path / "parent_run.png"), full_page=True)
            finally:
                browser.close()
        print(f"\nscreenshots: {tmp_path}/experiment.png, parent_artifact.png, parent_run.png")
        assert parent_id in parent_url

        os.kill(ui.process.pid, signal.SIGINT)  # what Ctrl-C sends: the server must stop with it
        assert ui.process.wait(timeout=30) == 0, "\n".join(ui.lines)
        deadline = time.monotonic() + 10
        while ui.group_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not ui.group_alive(), "MLflow server processes outlived `sweeper ui`"
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # nothing listens there any more
    finally:
        ui.kill()


def test_a_killed_sweeper_ui_takes_its_mlflow_server_with_it(swept):
    """SIGKILL gives `sweeper ui` no chance to stop the server it started in a session of its
    own; the guard leading that session notices and stops the whole group."""
    port = free_port()
    ui = UiProcess(["digits_svc_grid", "--port", str(port)], cwd=swept)
    try:
        ui.wait_for("press Ctrl-C to stop", timeout_s=120)
        server_tree = psutil.Process(ui.process.pid).children(recursive=True)
        assert len(server_tree) >= 2  # the guard, the server (and uvicorn)
        ui.process.kill()
        ui.process.wait(timeout=10)
        gone, alive = psutil.wait_procs(server_tree, timeout=30)
        assert alive == [], [p.cmdline() for p in alive]
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        ui.kill()


def test_ctrl_c_stops_sweeper_ui_started_with_sigint_ignored(swept):
    """A script's background job (``sweeper ui ... &``) starts with SIGINT ignored; the SIGINT
    a user or a supervisor sends still stops it and its server, with status 0."""
    port = free_port()
    ui = UiProcess(["digits_svc_grid", "--port", str(port)], cwd=swept, sigint_ignored=True)
    try:
        ui.wait_for("press Ctrl-C to stop", timeout_s=120)
        os.kill(ui.process.pid, signal.SIGINT)
        assert ui.process.wait(timeout=30) == 0, "\n".join(ui.lines)
        deadline = time.monotonic() + 10
        while ui.group_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not ui.group_alive(), "MLflow server processes outlived `sweeper ui`"
    finally:
        ui.kill()
