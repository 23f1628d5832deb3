"""Where the ``tritonserver`` binary bundled in the ``nvidia-pytriton`` wheel lives, and how
it must be run: the Python backend assembled with this interpreter's stub, the libraries
the binary and the stub link against, and the environment that lets the stub import the
project's third-party packages (tokenizers, numpy, llama_cpp)."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

PYTRITON_VERSION = "0.7.0"  # bundles Triton core 2.51 with the Python backend


@dataclass(frozen=True)
class Distribution:
    """The files of the ``nvidia-pytriton`` wheel this runtime uses."""

    root: Path  # site-packages/pytriton

    @property
    def binary(self) -> Path:
        return self.root / "tritonserver" / "bin" / "tritonserver"

    @property
    def python_backend(self) -> Path:
        return self.root / "tritonserver" / "backends" / "python"

    @property
    def stub(self) -> Path:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stubs = self.root / "tritonserver" / "python_backend_stubs"
        return stubs / version / "triton_python_backend_stub"

    @property
    def libs(self) -> Path:
        """The wheel's bundled shared libraries (auditwheel puts them beside the package)."""
        return self.root.parent / "nvidia_pytriton.libs"


def find_distribution() -> Distribution | None:
    """The installed wheel, found without importing it (importing pytriton is slow)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Distribution(Path(next(iter(spec.submodule_search_locations))))


def libpython_dir() -> Path:
    """The directory holding this interpreter's ``libpython3.x.so`` (the stub embeds it)."""
    return Path(str(sysconfig.get_config_var("LIBDIR")))


def unavailable_reason() -> str | None:
    """``None`` when the bundled Triton can run here, else why not."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return f"nvidia-pytriton's tritonserver runs on linux x86_64 only, not {sys.platform}"
    dist = find_distribution()
    if dist is None:
        return f"nvidia-pytriton not installed (pip install nvidia-pytriton=={PYTRITON_VERSION})"
    checks = {
        "tritonserver binary": dist.binary,
        "python backend": dist.python_backend / "libtriton_python.so",
        "python backend stub for this Python": dist.stub,
        "bundled libraries": dist.libs,
    }
    for what, path in checks.items():
        if not path.exists():
            return f"nvidia-pytriton has no {what} at {path}"
    library = sysconfig.get_config_var("LDLIBRARY") or "libpython3.so"
    if not (libpython_dir() / str(library)).exists():
        return f"no shared {library} in {libpython_dir()}: the Python backend stub needs it"
    if importlib.util.find_spec("tritonclient") is None:
        return "tritonclient not installed (pip install 'tritonclient[http,grpc]')"
    return None


def assemble_backends(dist: Distribution, work_dir: Path) -> Path:
    """``work_dir/backends`` with ``python/`` = the wheel's backend + this Python's stub.

    Built once (copied, not linked: the backend looks for the stub beside its library) and
    reused by later servers sharing ``work_dir``.
    """
    backends = work_dir / "backends"
    python = backends / "python"
    stub = python / "triton_python_backend_stub"
    if stub.exists():
        return backends
    staging = backends / f".python-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(dist.python_backend, staging, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(dist.stub, staging / "triton_python_backend_stub")
    try:
        staging.rename(python)  # atomic: a concurrent assembler either wins or finds it done
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return backends


def server_environment(dist: Distribution) -> dict[str, str]:
    """The environment of ``tritonserver`` and, through it, of every backend stub.

    The stub is a small C++ program embedding libpython, initialised in isolated mode:
    it ignores ``PYTHONPATH`` and ``PYTHONHOME`` (tried: numpy is then not found). It
    locates its interpreter like ``python3`` typed in a shell, through ``PATH``; with this
    venv's ``bin`` first it finds ``bin/python3`` there, reads ``pyvenv.cfg`` beside it and
    starts as the venv (site-packages and ``.pth`` files included), which is also how
    PyTriton runs its stubs. ``EXECUTION_ENV_PATH`` would need a conda-pack archive.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    libs = [str(libpython_dir()), str(dist.libs)]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    venv_bin = Path(sys.executable).parent
    env["PATH"] = os.pathsep.join([str(venv_bin), env.get("PATH", "/usr/bin:/bin")])
    return env
