"""Pytest fixtures for testing against a Hugging Face Hub that runs on 127.0.0.1.

Loaded by ``tests/conftest.py`` (``pytest_plugins = ["hub_fixtures"]``). See
/work/shared/DESIGN.md, "Testing the Hub offline".

- ``hub_upload_server``: the small upload-capable server of ``hub_server.py`` (in a
  thread), started with a token; attributes ``endpoint``, ``root``, ``token``,
  ``commits``, ``requests``, ``errors``, ``read_file()``. It also serves downloads.
- ``olah_server``: the PyPI mirror ``olah`` in a subprocess, offline, serving the git
  repositories the upload server writes (``hub_upload_server.root``); attribute
  ``endpoint``. It serves downloads only (GET/HEAD) and needs no token.
- ``hub_endpoint``: ``hub_endpoint(url, token=None)`` points huggingface_hub at ``url``
  until the test ends (or the ``with`` block exits, if used as a context manager):
  HF_ENDPOINT, offline mode off, a private HF_HOME/cache under tmp_path, no ambient token.
- ``deadline(seconds)``: a context manager that interrupts the (main-thread) code it
  wraps with ``DeadlineExceeded`` instead of letting it hang.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hub_server import HubServer

OLAH_CLI = Path(sys.executable).with_name("olah-cli")
OLAH_START_TIMEOUT = 30.0  # seconds; olah is usually up in ~1 s


class DeadlineExceeded(BaseException):
    """Raised by ``deadline``. A BaseException on purpose: huggingface_hub and httpx catch
    (and retry on) Exception/TimeoutError, which would swallow a plain timeout."""


@contextlib.contextmanager
def deadline(seconds: float):
    """Interrupt the main thread with DeadlineExceeded if the block runs past ``seconds``."""
    if not hasattr(signal, "setitimer"):  # no SIGALRM (Windows): no guard
        yield
        return

    def _expired(signum, frame):
        raise DeadlineExceeded(f"exceeded its {seconds} s deadline (a Hub call hung?)")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HubEndpoint:
    """huggingface_hub pointed at ``url`` (``url``, ``hf_home``, ``cache_dir``).

    Undone when the ``hub_endpoint`` fixture tears down, or earlier on leaving a ``with``
    block; nested uses restore the previous endpoint (LIFO).
    """

    def __init__(self, url: str, hf_home: Path, token: str | None = None):
        import huggingface_hub.constants as C
        from huggingface_hub import hf_api

        self.url, self.hf_home, self.cache_dir = url.rstrip("/"), hf_home, hf_home / "hub"
        self._mp = pytest.MonkeyPatch()
        mp, home = self._mp, str(hf_home)
        env = {"HF_ENDPOINT": self.url, "HF_HOME": home, "HF_HUB_CACHE": str(self.cache_dir),
               "HF_ASSETS_CACHE": f"{home}/assets", "HF_XET_CACHE": f"{home}/xet",
               "HF_TOKEN_PATH": f"{home}/token", "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_HUB_DISABLE_UPDATE_CHECK": "1"}
        for key, value in env.items():
            mp.setenv(key, value)
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
                    "HUGGINGFACE_HUB_CACHE", "HUGGINGFACE_ASSETS_CACHE"):
            mp.delenv(key, raising=False)
        if token is not None:
            mp.setenv("HF_TOKEN", token)
        # Values huggingface_hub computed from the environment when it was imported.
        host = urlsplit(self.url).hostname
        template = self.url + "/{repo_id}/resolve/{revision}/{filename}"
        consts = {"ENDPOINT": self.url, "HUGGINGFACE_CO_URL_TEMPLATE": template,
                  "HF_URL_HOSTS": getattr(C, "HF_URL_HOSTS", frozenset()) | {host},
                  "HF_HUB_OFFLINE": False, "HF_HUB_DISABLE_TELEMETRY": True,
                  "HF_HOME": home, "HF_HUB_CACHE": str(self.cache_dir), "HUGGINGFACE_HUB_CACHE": str(self.cache_dir),
                  "HF_ASSETS_CACHE": env["HF_ASSETS_CACHE"], "HUGGINGFACE_ASSETS_CACHE": env["HF_ASSETS_CACHE"],
                  "HF_XET_CACHE": env["HF_XET_CACHE"], "HF_TOKEN_PATH": env["HF_TOKEN_PATH"],
                  "HF_STORED_TOKENS_PATH": f"{home}/stored_tokens"}
        for key, value in consts.items():
            mp.setattr(C, key, value, raising=False)
        mp.setattr(hf_api.api, "endpoint", self.url)  # module-level HfApi behind hf_api.create_repo & co.
        imported_copies = (("huggingface_hub.utils._cache_manager", "HF_HUB_CACHE", str(self.cache_dir)),
                           ("huggingface_hub.utils._cache_assets", "HF_ASSETS_CACHE", env["HF_ASSETS_CACHE"]),
                           ("huggingface_hub.utils._git_credential", "ENDPOINT", self.url))
        for module, name, value in imported_copies:
            if module in sys.modules:
                mp.setattr(sys.modules[module], name, value, raising=False)

    def __enter__(self) -> "HubEndpoint":
        return self

    def __exit__(self, *exc) -> None:
        self._mp.undo()


@pytest.fixture
def hub_endpoint(tmp_path):
    """``hub_endpoint(url, token=None) -> HubEndpoint``; later calls override earlier ones."""
    made: list[HubEndpoint] = []

    def point(url: str, token: str | None = None) -> HubEndpoint:
        made.append(HubEndpoint(url, tmp_path / "hf_home", token))
        return made[-1]

    yield point
    for endpoint in reversed(made):
        endpoint._mp.undo()


@pytest.fixture
def hub_upload_server(tmp_path):
    """A running ``hub_server.HubServer`` on a free port, repos under ``tmp_path/hub_repos``."""
    with HubServer(tmp_path / "hub_repos", token="hf_lt_plugins_test_token") as server:
        server.root.mkdir(parents=True, exist_ok=True)
        yield server
    assert not server.errors, "the test Hub server crashed:\n" + "\n".join(server.errors)


@dataclass
class OlahServer:
    endpoint: str
    process: subprocess.Popen
    config_path: Path
    log_path: Path


def _start_olah(workdir: Path, mirrors: Path) -> OlahServer:
    for _attempt in range(3):  # a free port can be taken between probing and binding it
        port = _free_port()
        config = workdir / "olah.toml"
        config.write_text(
            f'[basic]\nhost = "127.0.0.1"\nport = {port}\nrepos-path = "{workdir / "cache"}"\n'
            f'mirrors-path = ["{mirrors}"]\nmirror-netloc = "127.0.0.1:{port}"\n'
            f'mirror-lfs-netloc = "127.0.0.1:{port}"\nmetadata-cache-ttl = 0\n'
            "[accessibility]\noffline = true\n"
        )
        log = workdir / "olah.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(OLAH_CLI), "-c", str(config), "--log-path", str(workdir / "logs")],
                                    cwd=workdir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = OlahServer(f"http://127.0.0.1:{port}", proc, config, log)
        stop_at = time.monotonic() + OLAH_START_TIMEOUT
        while proc.poll() is None and time.monotonic() < stop_at:
            try:
                urllib.request.urlopen(server.endpoint + "/", timeout=1).close()
                return server
            except urllib.error.HTTPError:
                return server  # it answers: up
            except OSError:
                time.sleep(0.05)
        _stop_olah(server)
        if time.monotonic() >= stop_at:
            break
    raise RuntimeError(f"olah did not start; its log:\n{log.read_text(errors='replace')[-3000:]}")


def _stop_olah(server: OlahServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)


@pytest.fixture
def olah_server(hub_upload_server, tmp_path):
    """olah (offline) serving ``hub_upload_server.root`` for downloads; ``.endpoint``."""
    if not OLAH_CLI.exists():  # a declared test dependency (pyproject [test]): fail, don't skip
        pytest.fail(f"olah is not installed ({OLAH_CLI} missing): pip install 'olah>=0.5'")
    workdir = tmp_path / "olah"
    workdir.mkdir()
    server = _start_olah(workdir, hub_upload_server.root)
    try:
        yield server
    finally:
        _stop_olah(server)
