"""One hypervisor as the driver speaks to it: libvirt-python, synchronous.

Everything here blocks (a ``qemu+ssh`` call is a network round trip), so the driver calls
it from a worker thread. Each operation looks first and acts only when needed, so the
driver's steps stay idempotent. libvirt's errors become the driver's typed errors in
:func:`driver_error`: a connection that fails or drops is retried, a document libvirt
refuses or a missing pool or image fails the tenancy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

try:
    import libvirt
except ImportError as exc:  # the registry imports the driver only when configured
    raise ImportError(
        "the libvirt driver needs libvirt-python: pip install 'sovereign-control-plane[libvirt]'"
        " (it builds against libvirt-dev)"
    ) from exc

from control_plane.tenancies.drivers.base import DriverError, PermanentError, RetryableError
from control_plane.tenancies.drivers.libvirt.domain import NAMESPACE, read_metadata

__all__ = ["Connections", "Host", "driver_error", "translated"]

# Extensions tried after the image's own name, so "ubuntu-24.04" finds "ubuntu-24.04.qcow2".
IMAGE_SUFFIXES = ("", ".qcow2", ".img", ".raw")
_UPLOAD_CHUNK = 256 * 1024

_PERMANENT = frozenset(
    {
        libvirt.VIR_ERR_XML_ERROR,
        libvirt.VIR_ERR_XML_DETAIL,
        libvirt.VIR_ERR_NO_STORAGE_POOL,
        libvirt.VIR_ERR_NO_STORAGE_VOL,
        libvirt.VIR_ERR_NO_NETWORK,
        libvirt.VIR_ERR_NO_SUPPORT,
        libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
        libvirt.VIR_ERR_INVALID_ARG,
        getattr(libvirt, "VIR_ERR_XML_INVALID_SCHEMA", 92),
    }
)


def driver_error(exc: libvirt.libvirtError, what: str) -> DriverError:
    """Retryable unless retrying cannot help (a refused document, a missing pool or image,
    an operation this hypervisor does not support)."""
    message = f"{what}: {exc.get_error_message() or exc}"
    if exc.get_error_code() in _PERMANENT:
        return PermanentError(message)
    return RetryableError(message)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Raise libvirt's errors inside the block as the driver's typed errors."""
    try:
        yield
    except libvirt.libvirtError as exc:
        raise driver_error(exc, what) from exc


def _quiet(_context: object, _error: object) -> None:
    """libvirt prints every error to stderr by default; the driver reports them itself."""


@dataclass
class Connections:
    """One open connection per URI, reopened when it died; shared by the worker threads.

    Caching matters beyond speed: a ``qemu+ssh`` open is an SSH handshake, and each open
    of a ``test:///file.xml`` URI starts from the file again (a fresh fake hypervisor).
    """

    _open: dict[str, Any] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        libvirt.registerErrorHandler(_quiet, None)

    def get(self, uri: str) -> Any:
        """The live connection to ``uri`` (a ``libvirt.virConnect``)."""
        with self._guard:
            lock = self._locks.setdefault(uri, threading.Lock())
        with lock:
            conn = self._open.get(uri)
            if conn is not None and _alive(conn):
                return conn
            with translated(f"cannot connect to {uri}"):
                conn = libvirt.open(uri)
            if conn is None:  # old bindings return None instead of raising
                raise RetryableError(f"cannot connect to {uri}")
            self._open[uri] = conn
            return conn

    def cached(self, uri: str) -> Any | None:
        """The open connection to ``uri``, if any (tests read the fake hypervisor with it)."""
        return self._open.get(uri)

    def close(self) -> None:
        with self._guard:
            for conn in self._open.values():
                try:
                    conn.close()
                except libvirt.libvirtError:
                    continue
            self._open.clear()


def _alive(conn: Any) -> bool:
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


@dataclass(frozen=True)
class Host:
    """The domains and volumes of one hypervisor."""

    conn: Any
    hostname: str

    def domain(self, name: str) -> Any | None:
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise driver_error(exc, f"{self.hostname}: looking up domain {name}") from exc

    def pool(self, name: str) -> Any:
        with translated(f"{self.hostname}: storage pool {name!r}"):
            pool = self.conn.storagePoolLookupByName(name)
            if not pool.isActive():
                raise RetryableError(f"{self.hostname}: storage pool {name!r} is not active")
            return pool

    def volume(self, pool: Any, name: str) -> Any | None:
        try:
            return pool.storageVolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return None
            raise driver_error(exc, f"{self.hostname}: looking up volume {name}") from exc

    def image(self, pool_name: str, image: str) -> Any:
        """The base image volume, or PermanentError naming what was looked for."""
        pool = self.pool(pool_name)
        for suffix in IMAGE_SUFFIXES:
            volume = self.volume(pool, image + suffix)
            if volume is not None:
                return volume
        raise PermanentError(f"{self.hostname}: no image {image!r} in storage pool {pool_name!r}")

    def clone(self, pool: Any, xml: str, source: Any) -> Any:
        with translated(f"{self.hostname}: cloning the boot disk"):
            return pool.createXMLFrom(xml, source, 0)

    def create_with(self, pool: Any, xml: str, data: bytes | None) -> Any:
        """Create a volume and, when ``data`` is given, upload it; a failed upload removes
        the volume again so that the next call starts over."""
        with translated(f"{self.hostname}: creating a volume"):
            volume = pool.createXML(xml, 0)
        if data is None:
            return volume
        try:
            stream = self.conn.newStream(0)
            volume.upload(stream, 0, len(data), 0)
            for start in range(0, len(data), _UPLOAD_CHUNK):
                stream.send(data[start : start + _UPLOAD_CHUNK])
            stream.finish()
        except libvirt.libvirtError as exc:
            volume.delete(0)
            raise driver_error(exc, f"{self.hostname}: uploading the cloud-init seed") from exc
        return volume

    def define(self, xml: str) -> Any:
        """Define a domain; libvirt checks the XML against its schema first."""
        with translated(f"{self.hostname}: defining the domain"):
            return self.conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)

    def undefine(self, domain: Any) -> None:
        """Undefine with the domain's UEFI variables, managed save and snapshot metadata."""
        flags = (
            libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        )
        with translated(f"{self.hostname}: undefining {domain.name()}"):
            try:
                domain.undefineFlags(flags)
            except libvirt.libvirtError as exc:
                # hypervisors without UEFI variables (libvirt's test driver) refuse the flag
                if exc.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:
                    raise
                domain.undefineFlags(flags & ~libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)

    def delete(self, volume: Any, *, wipe: bool) -> None:
        if wipe:
            try:
                volume.wipe(0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                    raise PermanentError(
                        f"{self.hostname}: storage pool cannot wipe volume {volume.name()}; "
                        "set CP_LIBVIRT_WIPE_VOLUMES=false only if its storage is wiped "
                        "otherwise"
                    ) from exc
                raise driver_error(exc, f"{self.hostname}: wiping {volume.name()}") from exc
        with translated(f"{self.hostname}: deleting volume {volume.name()}"):
            volume.delete(0)

    @staticmethod
    def fingerprint(domain: Any) -> str | None:
        """The spec fingerprint the driver stored in the domain's metadata."""
        try:
            xml = domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NAMESPACE, 0)
        except libvirt.libvirtError:
            return None  # defined by someone else, or before metadata was written
        return read_metadata(xml).get("spec")
