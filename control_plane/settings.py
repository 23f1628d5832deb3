"""The one settings object: every knob is a ``CP_`` environment variable."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_PATH = Path("var/control-plane.db")


class Settings(BaseSettings):
    """Control-plane configuration, read once at start-up (never at import time)."""

    model_config = SettingsConfigDict(env_prefix="CP_", env_file=None, extra="ignore")

    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str = ""
    environment: Literal["development", "test", "production"] = "development"
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"

    # The data region this deployment serves (one release per region). Its ledger chains,
    # signing keys and key-encryption keys live here.
    region: str = Field(default="ca-qc-1", pattern=r"^[a-z0-9][a-z0-9-]{1,38}$")
    # Where file-backed keys live (audit signing keys, key-encryption keys): one directory
    # per deployment, readable only by the control plane.
    key_dir: Path = Path("var/keys")
    # Signed audit checkpoints: one per interval when the ledger moved (CloudTrail: hourly).
    audit_checkpoint_seconds: float = Field(default=600, gt=0)

    # Sessions and cookies. ``cookie_secure`` defaults to True; localhost runs turn it off.
    secret_key: SecretStr = SecretStr("")
    cookie_secure: bool = True
    session_ttl_seconds: int = Field(default=12 * 3600, ge=60)

    # Login protection.
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_seconds: int = Field(default=900, ge=1)
    login_rate_per_minute: int = Field(default=20, ge=1)

    # Request limits.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    page_size_default: int = Field(default=50, ge=1, le=500)
    page_size_max: int = Field(default=200, ge=1, le=1000)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    api_key_cache_seconds: float = Field(default=5.0, ge=0)

    # Single sign-on (OpenID Connect); disabled when issuer is empty.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_display_name: str = "Single sign-on"
    oidc_default_org: str = ""

    # Tenancy drivers: "<region>/<kind>" -> driver name (sim, redfish, slurm, ...), as JSON,
    # e.g. CP_DRIVERS='{"se-north-1/bare_metal": "redfish"}'. Unlisted pairs use "sim".
    drivers: dict[str, str] = Field(default_factory=dict)
    # Where the simulated data centre keeps its machines (survives restarts).
    sim_dir: Path = Path("var/sim")
    # How many provisioning polls a simulated machine takes to come up ("installing").
    sim_boot_polls: int = Field(default=2, ge=1, le=100)
    # Reconciler: whether this process runs it, how often it looks for work, how long a
    # claim lasts, how many failed attempts fail a provisioning.
    reconciler_enabled: bool = True
    reconcile_interval_seconds: float = Field(default=1.0, gt=0)
    reconcile_lease_seconds: float = Field(default=60.0, gt=0)
    # At shutdown, how long the step in hand may take to finish before it is cancelled
    # (the chart's pod: 5 s pre-stop + 10 s of uvicorn's drain + this, under its 30 s
    # terminationGracePeriodSeconds).
    reconcile_stop_grace_seconds: float = Field(default=10.0, ge=0)
    reconcile_max_attempts: int = Field(default=8, ge=1)
    # A tenancy still placing, provisioning, releasing or cleaning after this long is
    # flagged as stuck (a timeline warning, the cp_tenancies_stuck gauge, a log line).
    reconcile_stuck_after_seconds: float = Field(default=1800.0, gt=0)

    # --- driver options (one block per driver) ---

    # Redfish (bare metal over BMCs, driver "redfish"): request timeouts; TLS verification
    # of the BMCs (a CA bundle pins the BMCs' CA; turning verification off is for labs);
    # plain-http BMC endpoints are refused unless allowed (basic-auth credentials would
    # cross in clear); BMC URLs the health check probes besides those already used; where
    # each node's step progress is journaled (must survive restarts and be shared by the
    # reconciler replicas); how long a power action may stay unapplied before it is resent.
    redfish_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    redfish_read_timeout_seconds: float = Field(default=30.0, gt=0)
    redfish_verify_tls: bool = True
    redfish_ca_bundle: Path | None = None
    redfish_allow_http: bool = False
    redfish_health_urls: list[str] = Field(default_factory=list)
    redfish_state_dir: Path = Path("var/redfish")
    redfish_power_wait_seconds: float = Field(default=120.0, gt=0)

    # Slurm (driver "slurm": a tenancy is an account + QOS + reservation): where the client
    # commands (sacctmgr, scontrol, squeue, scancel) live (empty: PATH) and the slurm.conf
    # they read (SLURM_CONF; empty: Slurm's default); the cluster name in slurmdbd (empty:
    # the ClusterName slurmctld reports); a time limit per command (clients hang while
    # slurmctld is down); Slurm users added to every tenancy account besides its own user
    # (operators; they need a default account of their own). Per-region overrides as JSON,
    # e.g. CP_SLURM_REGIONS='{"se-north-1": {"conf": "/etc/slurm-sto/slurm.conf",
    # "bin_dir": "/opt/slurm/bin", "cluster": "sto"}}'.
    slurm_bin_dir: Path | None = None
    slurm_conf: Path | None = None
    slurm_cluster: str = ""
    slurm_command_timeout_seconds: float = Field(default=20.0, gt=0)
    slurm_admin_users: list[str] = Field(default_factory=list)
    slurm_regions: dict[str, dict[str, str]] = Field(default_factory=dict)

    # libvirt (driver "libvirt": a VM tenancy is one domain per placed node, GPUs passed
    # through by PCI address). How to reach a node's libvirt ({hostname}, {node_id},
    # {region} are filled in); the storage pool holding the region's base images and the
    # one the tenancies' disks are cloned into (the same pool is fine); the image used when
    # a tenancy names none; the boot disk's size; a domain's size per GPU (scaled by the
    # GPU share, with floors); the libvirt network the VMs join; the guest user the
    # tenant's SSH keys log in as; how long a guest gets to shut down before it is
    # destroyed; whether a disk is wiped before it is deleted (turn off only for pools whose
    # storage is wiped otherwise) and whether the cloud-init seed's bytes are uploaded
    # (off only for libvirt's test driver, which cannot upload); the console proxy's URL
    # ({token}, {region}, {host}) and the key its tokens are signed with (HMAC-SHA256).
    # Per-region overrides as JSON, e.g. CP_LIBVIRT_REGIONS='{"ca-qc-1": {"uri_template":
    # "qemu+tls://{hostname}/system", "image_pool": "golden"}}'.
    libvirt_uri_template: str = "qemu+ssh://root@{hostname}/system"
    libvirt_image_pool: str = "images"
    libvirt_disk_pool: str = "tenancies"
    libvirt_default_image: str = ""
    libvirt_disk_gib: int = Field(default=100, ge=1)
    libvirt_vcpus_per_gpu: int = Field(default=16, ge=1)
    libvirt_memory_gib_per_gpu: int = Field(default=96, ge=1)
    libvirt_min_vcpus: int = Field(default=2, ge=1)
    libvirt_min_memory_gib: int = Field(default=4, ge=1)
    libvirt_network: str = "default"
    libvirt_guest_user: str = "tenant"
    libvirt_shutdown_grace_seconds: float = Field(default=60.0, ge=0)
    libvirt_wipe_volumes: bool = True
    libvirt_upload_seed: bool = True
    libvirt_console_url_template: str = ""
    libvirt_console_key: SecretStr = SecretStr("")
    libvirt_regions: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Host names whose hypervisor the health check asks (besides nothing: the driver has
    # no fleet list of its own).
    libvirt_health_hosts: list[str] = Field(default_factory=list)
    # Kubernetes (driver "kubernetes": a tenancy is a namespace on the region's GPU cluster
    # with a GPU quota, network isolation and RBAC for the organization's group). Clusters
    # per region as JSON, e.g. CP_KUBERNETES_CLUSTERS='{"ca-qc-1": {"server":
    # "https://k8s.ca-qc-1:6443", "ca_file": "/etc/cp/k8s-ca.pem", "token_secret":
    # "k8s/ca-qc-1", "version": "1.31"}}'; optional keys per cluster: public_server (the URL
    # tenants' kubeconfigs carry), gpu_resource, region_label, gpu_label, gpu_products (GPU
    # model -> the node label's value), gpu_taint, storage_class (docs/drivers/kubernetes.md).
    # CPU cores and memory (GiB) a tenancy may request per GPU; the storage it may claim; the
    # lifetime of the kubeconfig tokens it is issued; a time limit per API call; the image
    # of the Jupyter workspace preset and the size of its home volume.
    kubernetes_clusters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    kubernetes_cpu_per_gpu: int = Field(default=16, ge=1)
    kubernetes_memory_gib_per_gpu: int = Field(default=128, ge=1)
    kubernetes_storage_gib: int = Field(default=500, ge=1)
    kubernetes_token_ttl_seconds: int = Field(default=8 * 3600, ge=600, le=7 * 24 * 3600)
    kubernetes_request_timeout_seconds: float = Field(default=30.0, gt=0)
    kubernetes_jupyter_image: str = "quay.io/jupyter/pytorch-notebook:cuda12-latest"
    kubernetes_workspace_storage_gib: int = Field(default=50, ge=1)
    # Inference endpoints. Model stores: "<region>" -> the directory (file:// URI or path)
    # under which that region's model repositories live; a model version must come from a
    # store in a region the organization's residency policy allows, e.g.
    # CP_MODEL_STORES='{"ca-qc-1": "file:///srv/models/ca-qc-1"}'. Unset: var/models/<region>.
    model_stores: dict[str, str] = Field(default_factory=dict)
    model_store_root: Path = Path("var/models")
    # Where the local Triton driver keeps each replica's model repository, logs and PID.
    triton_dir: Path = Path("var/triton")
    triton_start_timeout_seconds: float = Field(default=120.0, gt=0)
    # Portal pages in progress at once per process (the rest wait their turn): pages cost
    # 2-3x an API call's CPU, and holding them back keeps the API's tail latency down when
    # the process is near the limit of its core (portal/bulkhead.py).
    portal_pages_at_once: int = Field(default=4, ge=1)
    # Gateway: defaults per API key (requests/s, tokens/min), how long a request waits for
    # a replica (cold start from zero included), upstream timeout, usage flush cadence.
    gateway_requests_per_second: float = Field(default=50.0, gt=0)
    gateway_tokens_per_minute: int = Field(default=200_000, ge=1)
    gateway_cold_start_seconds: float = Field(default=120.0, gt=0)
    gateway_upstream_timeout_seconds: float = Field(default=300.0, gt=0)
    gateway_flush_seconds: float = Field(default=5.0, gt=0)
    gateway_routes_ttl_seconds: float = Field(default=1.0, gt=0)
    autoscale_enabled: bool = True
    autoscale_interval_seconds: float = Field(default=5.0, gt=0)
    # Metering: how late (window start before now) a trusted source's event is accepted.
    usage_late_hours: int = Field(default=72, ge=1, le=24 * 62)
    # Telemetry: raw GPU samples kept this many days, hourly rollups this many; dirty hours
    # rolled up this often; a sample older than this many hours is refused.
    telemetry_raw_days: int = Field(default=7, ge=1, le=90)
    telemetry_rollup_days: int = Field(default=395, ge=30, le=3650)
    telemetry_rollup_seconds: float = Field(default=60.0, gt=0)
    telemetry_late_hours: int = Field(default=72, ge=1, le=24 * 30)
    # Insights: waste analysis over this many trailing days, run this often.
    insights_window_days: int = Field(default=7, ge=1, le=90)
    insights_interval_seconds: float = Field(default=3600.0, gt=0)
    # Billing: budget checks and the outbox (webhooks, e-mail, Stripe) run this often.
    billing_interval_seconds: float = Field(default=30.0, gt=0)
    # E-mail for budget alerts: smtp://host:port (no auth) or smtps://user:pass@host:port.
    smtp_url: str | None = None
    smtp_from: str = "billing@localhost"
    # Stripe (optional): secret key, API base (a local emulator in tests) and the webhook
    # signing secret. Unset key: billing works without Stripe.
    stripe_api_key: SecretStr | None = None
    stripe_api_base: str | None = None
    stripe_webhook_secret: SecretStr | None = None

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("CP_DATABASE_URL must be a sqlite:/// or postgresql:// URL")
        return value

    @cached_property
    def async_database_url(self) -> str:
        """The URL with the async driver the app uses for this database."""
        return driver_url(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"


def driver_url(url: str) -> str:
    """Map a plain ``sqlite:///`` or ``postgresql://`` URL to the async driver we use."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if base in {"postgresql", "postgres"}:
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"unsupported database: {scheme}")
