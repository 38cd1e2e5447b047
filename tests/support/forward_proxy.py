"""A real forward proxy for tests: proxy.py in a subprocess on a free loopback port, its access log readable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from proxy.http.proxy import HttpProxyBasePlugin

#: Host names only the proxy can resolve (to loopback), as a company proxy resolves names the laptop cannot.
PROXY_ONLY_DOMAIN = ".sandbox.test"


class ProxyOnlyNames(HttpProxyBasePlugin):
    """Resolves ``*.sandbox.test`` to 127.0.0.1 inside the proxy; every other name as the system does."""

    def resolve_dns(self, host: str, port: int) -> tuple[str | None, None]:
        if host.endswith(PROXY_ONLY_DOMAIN):
            return "127.0.0.1", None
        return None, None


class ForwardProxy:
    """proxy.py serving on 127.0.0.1 until the context ends.

    With ``tls`` (a certificate chain and its key, PEM files) the proxy itself is reached over TLS, as a company's
    ``https://`` proxy is.

    Attributes:
        url: ``http://127.0.0.1:PORT`` (``https://`` with ``tls``) once started.
        log_file: where proxy.py writes its log, one access line per request or CONNECT tunnel.
    """

    def __init__(
        self, folder: Path, *, basic_auth: str | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.folder = folder
        self.log_file = folder / "proxy.log"
        self._port_file = folder / "proxy.port"
        self._basic_auth = basic_auth
        self._tls = tls
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> ForwardProxy:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "proxy",
            "--hostname", "127.0.0.1", "--port", "0", "--port-file", str(self._port_file),
            "--num-acceptors", "1", "--num-workers", "1",
            "--log-level", "INFO", "--log-file", str(self.log_file),
            "--plugins", f"{__name__}.ProxyOnlyNames",
        ]
        if self._basic_auth:
            command += ["--basic-auth", self._basic_auth]
        if self._tls is not None:
            command += ["--cert-file", str(self._tls[0]), "--key-file", str(self._tls[1])]
        root = Path(__file__).resolve().parents[2]
        search_path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        environment = {**os.environ, "PYTHONPATH": search_path}
        self._process = subprocess.Popen(
            command, cwd=root, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(f"proxy.py exited at start: {error[-2000:]}")
            text = self._port_file.read_text().strip() if self._port_file.exists() else ""
            if text.isdigit():
                self.url = f"{'https' if self._tls is not None else 'http'}://127.0.0.1:{text}"
                return self
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError("proxy.py did not start within 20 s")

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process.stderr is not None:
            process.stderr.close()

    def log(self) -> str:
        """What the proxy logged so far."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 30.0, count: int = 1) -> str:
        """The log once it holds ``text`` ``count`` times (access lines are written when a tunnel closes, by a
        process of its own: on a loaded machine, seconds later); what it holds after ``timeout`` seconds if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if log.count(text) >= count:
                return log
            time.sleep(0.05)
        return self.log()
