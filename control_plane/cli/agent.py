"""``cpctl agent``: the GPU node agent (runs on each GPU node, not on the control plane).

The agent's code is in :mod:`control_plane.telemetry.agent`; it is imported inside each
command so the rest of ``cpctl`` starts without it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from control_plane.telemetry.agent.sources import Source
    from control_plane.telemetry.agent.wire import Sample

SOURCE_HELP = "nvml (this node's GPUs), fake (4 simulated GPUs) or replay:FILE (a recording)."
source_option = click.option("--source", default="nvml", show_default=True, help=SOURCE_HELP)


@click.group("agent")
def agent_group() -> None:
    """GPU node agent: samples GPUs with NVML and ships the samples to the control plane."""


@agent_group.command("run")
@click.option("--url", required=True, help="Control plane base URL, e.g. https://cp.example.")
@click.option(
    "--credential-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The node credential (mode 600). Default: the CP_AGENT_CREDENTIAL variable.",
)
@click.option("--interval", default=10.0, show_default=True, type=click.FloatRange(min=0.05))
@click.option("--batch-seconds", default=60.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--batch-max-samples", default=5000, show_default=True, type=click.IntRange(1, 5000))
@click.option(
    "--spool-dir",
    default=Path("/var/lib/cpctl-agent/spool"),
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
)
@click.option("--spool-max-bytes", default=64 << 20, show_default=True, type=click.IntRange(1))
@click.option("--metrics-port", default=9402, show_default=True, type=click.IntRange(0, 65535))
@click.option("--metrics-host", default="0.0.0.0", show_default=True)  # noqa: S104 - scraped
@click.option("--log-format", type=click.Choice(["console", "json"]), default="console")
@source_option
def agent_run(
    url: str,
    credential_file: Path | None,
    interval: float,
    batch_seconds: float,
    batch_max_samples: int,
    spool_dir: Path,
    spool_max_bytes: int,
    metrics_port: int,
    metrics_host: str,
    log_format: str,
    source: str,
) -> None:
    """Sample every --interval seconds and ship batches until SIGTERM or SIGINT."""
    from control_plane.telemetry.agent.credential import CredentialError, load_credential
    from control_plane.telemetry.agent.run import AgentConfig, AgentOptions, run_agent

    try:
        credential = load_credential(credential_file, os.environ)
    except CredentialError as exc:
        raise click.ClickException(str(exc)) from None
    options = AgentOptions(
        url=url,
        spool_dir=spool_dir,
        spool_max_bytes=spool_max_bytes,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        config=AgentConfig(
            interval=interval, batch_seconds=batch_seconds, batch_max_samples=batch_max_samples
        ),
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with _opened(source, log_format) as opened:
        try:
            run_agent(options, credential, opened, stop)
        except OSError as exc:  # the spool directory, the metrics port
            raise click.ClickException(str(exc)) from None


@agent_group.command("sample")
@source_option
def agent_sample(source: str) -> None:
    """Print one sampling pass as JSON (the wire format of a sample)."""
    import msgspec

    from control_plane.clock import Clock

    with _opened(source) as opened:
        samples = opened.sample(Clock().now())
    click.echo(msgspec.json.format(msgspec.json.encode(samples), indent=2).decode())


@agent_group.command("record")
@source_option
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--passes", default=30, show_default=True, type=click.IntRange(1))
@click.option("--interval", default=10.0, show_default=True, type=click.FloatRange(min=0))
def agent_record(source: str, out: Path, passes: int, interval: float) -> None:
    """Record --passes sampling passes to a JSON Lines file for --source replay:FILE."""
    from control_plane.clock import Clock
    from control_plane.telemetry.agent.replay import write_recording

    clock = Clock()
    with _opened(source) as opened:

        def take() -> Iterator[list[Sample]]:
            for n in range(passes):
                if n:
                    time.sleep(interval)
                yield opened.sample(clock.now())

        written = write_recording(out, take())
    click.echo(f"{written} samples in {passes} passes written to {out}")


@contextmanager
def _opened(spec: str, log_format: str = "console") -> Iterator[Source]:
    """The source ``spec`` names, closed afterwards; a clear message when it can't open."""
    from control_plane.logging import configure_logging
    from control_plane.telemetry.agent.sources import open_source

    configure_logging(log_format)  # to stderr: stdout is for the samples
    try:
        source = open_source(spec)
    except Exception as exc:  # a bad spec, a missing file, no NVIDIA driver (NVMLError)
        raise click.ClickException(f"cannot open source {spec!r}: {exc}") from None
    try:
        yield source
    finally:
        source.close()
