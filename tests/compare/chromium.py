"""Test helper: load a local HTML file in headless Chromium (a screenshot, or the DOM after its scripts ran)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """Path of a Chromium-family browser on PATH (:data:`BROWSERS`), or None.

    Example:
        >>> find_browser()  # doctest: +SKIP
        '/usr/bin/chromium'
    """
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the browser's process group (its own session: started by us, renderers included)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - not POSIX
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def _chromium(args: list[str], timeout: float) -> tuple[int, bytes, bytes]:
    """Run the headless browser with ``args``; (exit code, stdout, stderr). No network, fresh profile.

    The browser runs in a new session and its whole process group is killed on timeout (and any
    helper left over afterwards), so a hung renderer cannot outlive the call.
    """
    browser = find_browser()
    if browser is None:
        raise RuntimeError("no Chromium-family browser found")
    with tempfile.TemporaryDirectory(prefix="focusnet-chromium-") as profile, \
            tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        cmd = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
            "--mute-audio", f"--user-data-dir={profile}", *args,
        ]
        env = dict(os.environ, HOME=profile)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            _kill_group(proc)
        out.seek(0)
        err.seek(0)
        return code, out.read(), err.read()


def render_with_chromium(
    html_path: Path,
    png_path: Path,
    timeout: float = 60,
    window_size: tuple[int, int] = (1280, 2000),
) -> Path | None:
    """Screenshot a (local) HTML file with headless Chromium.

    Returns:
        ``png_path``, or None when no Chromium-family browser is installed.

    Raises:
        RuntimeError: the browser ran but wrote no screenshot (its stderr tail is in the message).
        subprocess.TimeoutExpired: it ran longer than ``timeout`` seconds.

    Example:
        >>> render_with_chromium(Path("out/report.html"), Path("out/report.png"))  # doctest: +SKIP
        PosixPath('out/report.png')
    """
    if find_browser() is None:
        return None
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.unlink(missing_ok=True)
    uri = Path(html_path).resolve().as_uri()
    size = f"--window-size={window_size[0]},{window_size[1]}"
    code, _, err = _chromium([f"--screenshot={png_path}", size, uri], timeout)
    if not png_path.is_file() or png_path.stat().st_size == 0:
        tail = err.decode("utf-8", "replace")[-800:]
        raise RuntimeError(f"chromium wrote no screenshot (exit {code}): {tail}")
    return png_path


def dump_dom_with_chromium(html_path: Path, timeout: float = 60) -> str | None:
    """The DOM of a (local) HTML file after its scripts ran, from headless Chromium's ``--dump-dom``.

    Returns:
        The serialised DOM, or None when no Chromium-family browser is installed.

    Raises:
        RuntimeError: the browser printed nothing.

    Example:
        >>> "gallery" in dump_dom_with_chromium(Path("out/report.html"))  # doctest: +SKIP
        True
    """
    if find_browser() is None:
        return None
    code, out, err = _chromium(["--dump-dom", Path(html_path).resolve().as_uri()], timeout)
    dom = out.decode("utf-8", "replace")
    if not dom.strip():
        tail = err.decode("utf-8", "replace")[-800:]
        raise RuntimeError(f"chromium printed no DOM (exit {code}): {tail}")
    return dom
