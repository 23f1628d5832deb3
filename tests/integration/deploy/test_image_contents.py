"""What the image holds and runs, without Docker (these machines have no daemon to build
it): the Dockerfile's builder steps run as written on the build context its COPY lines
make (minus .dockerignore), a wheel built with no access to the checkout; then its
runtime stage's command runs from that package alone, as the image's non-root user, with
the image's environment and the chart's migration and serve arguments. Migrations,
templates and static files must travel in the package for this to work, and the server
may write only under the image's HOME (its emptyDir; the root filesystem is read-only).
The Python dependencies come from the test's own environment (resolving them is pip's
job, and the image's builder runs the same ``pip install .``). The test runs as the
checkout's user: the image's uid could not run this machine's interpreter (it lives
under /root); the non-root user is pinned by the Dockerfile and chart tests."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.fixtures.replicas import free_port
from tests.fixtures.throwaway_db import throwaway_postgres

DOCKERFILE = (REPO / "Dockerfile").read_text()
IMAGE_HOME = "/var/run/cp"  # the runtime stage's HOME and WORKDIR, its only writable place


def _stages() -> list[list[str]]:
    """Each stage's instructions, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            stages.append([])
        if stages and line and not line.startswith("#"):
            stages[-1].append(line)
    return stages


def _instructions(stage: list[str], keyword: str) -> list[str]:
    return [line[len(keyword) + 1 :] for line in stage if line.startswith(keyword + " ")]


def _ignored(directory: str, names: list[str]) -> set[str]:
    """The build context leaves out what .dockerignore names (anywhere, for ``**/``)."""
    patterns = [
        line.removeprefix("**/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return {name for name in names if any(Path(name).match(p) for p in patterns)}


def _build_context(target: Path) -> None:
    """Copy what the builder stage's COPY lines take from the checkout into ``target``."""
    builder = _stages()[0]
    for copy in _instructions(builder, "COPY"):
        *sources, destination = shlex.split(copy)
        assert not any(s.startswith("--") for s in sources), copy
        for source in sources:
            origin = REPO / source
            into = target / destination.removeprefix("./")
            if origin.is_dir():
                shutil.copytree(origin, into, ignore=_ignored)
            else:
                into.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into / origin.name)


def _runtime_env() -> dict[str, str]:
    """The runtime stage's ENV, with its paths under /var/run/cp kept as written."""
    found: dict[str, str] = {}
    for line in _instructions(_stages()[-1], "ENV"):
        for pair in shlex.split(line):
            name, _, value = pair.partition("=")
            found[name] = value
    return found


@dataclass(frozen=True)
class Image:
    site: Path  # where the builder's ``pip install .`` put the package
    home: Path  # stands in for /var/run/cp (the image's HOME and WORKDIR)
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], env=self.env, cwd=self.home, capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The builder stage: ``pip install .`` on the build context, then ``compileall``."""
    root = tmp_path_factory.mktemp("image")
    context, wheels, site = root / "context", root / "wheels", root / "site"
    _build_context(context)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir", "-q"]
    _step([*pip, "wheel", "--no-deps", "-w", str(wheels), str(context)])
    (wheel,) = wheels.glob("*.whl")
    _step([*pip, "install", "--no-deps", "--target", str(site), str(wheel)])
    _step([sys.executable, "-m", "compileall", "-q", str(site)])
    return site


def _step(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture
def image(built: Path, db_kind: str, database_url: str, tmp_path: Path) -> Iterator[Image]:
    """The runtime stage as the chart runs it: its environment (nothing else of this
    process's), the chart's settings and secrets, a database of its own."""
    home = tmp_path / "var-run-cp"
    home.mkdir()
    env = {
        name: value.replace(IMAGE_HOME, str(home)).replace("$PATH", os.environ["PATH"])
        for name, value in _runtime_env().items()
    }
    env.update(
        PYTHONPATH=str(built), CP_PORT=str(free_port()), CP_HOST="127.0.0.1",
        CP_REGION="ca-qc-1", CP_PUBLIC_URL="https://cloud.example",
        CP_SECRET_KEY=secrets.token_urlsafe(48), CP_ROLE="api",
    )  # fmt: skip
    if db_kind == "sqlite":
        env["CP_DATABASE_URL"] = f"sqlite:///{home / 'control-plane.db'}"
        yield Image(built, home, env)
        return
    with throwaway_postgres(database_url, "image") as url:
        env["CP_DATABASE_URL"] = url
        yield Image(built, home, env)


def test_the_package_is_imported_from_the_built_wheel_not_the_checkout(image: Image) -> None:
    done = image.run(
        "-c", "import control_plane, portal, billing, migrations as m; "
        "print(control_plane.__file__, portal.__file__, billing.__file__, m.__file__)",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for module in done.stdout.split():
        assert Path(module).is_relative_to(image.site), module


def test_the_migration_job_then_the_server_run_as_the_image_does(image: Image) -> None:
    cpctl = str(image.site / "bin" / "cpctl")
    migrated = image.run(cpctl, "db", "upgrade")  # the migration Job's arguments
    assert migrated.returncode == 0, migrated.stderr[-2000:]

    installed = _listing(image.site)
    server = subprocess.Popen(
        [sys.executable, cpctl, "serve"], env=image.env, cwd=image.home,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{image.env['CP_PORT']}"
    try:
        with httpx.Client(base_url=base, timeout=5) as http:
            _wait_ready(http, server)
            assert http.get("/healthz").status_code == 200
            login = http.get("/login")
            assert login.status_code == 200
            assert "<form" in login.text  # a template from the package
            styles = re.findall(r'href="(/static/[^"]+\.css)"', login.text)
            assert styles, "the login page links no stylesheet"
            for href in styles:
                asset = http.get(href)
                assert asset.status_code == 200, href
                assert asset.headers["content-type"].startswith("text/css")
        # The image's HEALTHCHECK, as written, against this port.
        (healthcheck,) = _instructions(_stages()[-1], "HEALTHCHECK")
        command = re.search(r"\"-c\", \"(.+)\"\]$", healthcheck)
        assert command, healthcheck
        probe = command.group(1).replace(":8000/", f":{image.env['CP_PORT']}/")
        assert image.run("-c", probe).returncode == 0
        server.send_signal(signal.SIGTERM)  # what the kubelet sends (tini forwards it)
        # uvicorn shuts down gracefully, then re-raises the signal (exit status 143).
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert _listing(image.site) == installed, "the server wrote into its installed package"


def _listing(directory: Path) -> dict[str, float]:
    return {str(path): path.stat().st_mtime for path in directory.rglob("*")}


def _wait_ready(http: httpx.Client, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.stdout.read() if server.stdout else ""
            pytest.fail(f"the server exited ({server.returncode}): {output[-3000:]}")
        try:
            if http.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("the server never became ready")
