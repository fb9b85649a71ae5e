"""The hub's settings: one typed object, every knob an ``HUB_*`` environment variable.

Connections to department systems are named in ``catalogs/departments/*.yml`` and
resolved here from ``HUB_CONN_<NAME>`` (an Airflow-style URI; the password part is the
secret). Nothing secret lives in ``catalogs/`` or in the code.

Settings fail closed: a connection or secret that is not set is one error naming its
variable, never a fallback. The demo opts in explicitly with ``HUB_PROFILE=demo``: then a
variable the environment does not set is read from ``HUB_HOME/systems/demo.env`` (written
by the simulator, naming its databases, SFTP server and registry API), and the hub's own
keys may be generated under ``HUB_HOME/secrets``. The warehouse defaults to a DuckDB file
under ``HUB_HOME`` in every profile.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.storage.urls import parse_store_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Values that mean "somebody forgot to set the secret"; refused at start.
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "password", "xxx", "todo"})
# the demo profile's connections and secrets, under HUB_HOME/systems (the simulator writes it)
DEMO_ENV_FILE = "demo.env"


class SettingsError(ValueError):
    """A setting is missing or unusable; the message names the environment variable."""


class Settings(BaseSettings):
    """Every knob of the hub. Read once per process through :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    profile: Literal["deployment", "demo"] = Field(
        default="deployment",
        description="deployment: every connection and secret must be set. demo (the opt-in "
        "of `hub demo` and the tests): missing ones come from HUB_HOME/systems/demo.env, "
        "and the hub's own keys are generated under HUB_HOME/secrets.",
    )
    home: Path = Field(
        default=PROJECT_ROOT / "state",
        description="State directory: warehouse file, landing batches, the demo's systems.",
    )
    catalog_dir: Path = Field(default=PROJECT_ROOT / "catalogs")
    warehouse_url: str = Field(
        default="",
        description="duckdb:///path/to/file.duckdb (default, under HUB_HOME) or postgresql://...",
    )
    landing_dir: Path | None = Field(default=None, description="Default: HUB_HOME/landing.")

    duckdb_memory_limit: str = Field(
        default="1GB",
        pattern=r"^[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|KiB|MiB|GiB)$",
        description=(
            "DuckDB's memory cap in every step on the embedded warehouse (sync, the dbt "
            "build, gate, publish): past it DuckDB spills to disk, so a step's memory does "
            "not grow with the tables (DuckDB's own default is 80% of the machine)."
        ),
    )

    # extraction
    batch_rows: int = Field(default=100_000, ge=1_000, description="Rows per Arrow batch.")
    overlap_minutes: int = Field(
        default=60,
        ge=0,
        description="Incremental reads start this far before the watermark (late commits).",
    )
    reconcile_every: int = Field(
        default=1,
        ge=0,
        description="Find deleted keys every N incremental runs (0: only with --full).",
    )
    http_timeout_s: float = Field(default=30.0, gt=0)
    http_retries: int = Field(default=5, ge=0)
    http_backoff_s: float = Field(default=0.5, ge=0)
    sftp_retries: int = Field(default=3, ge=0)

    # publish
    keep_versions: int = Field(
        default=5,
        ge=1,
        description="Published versions kept per shared resource (rollback, as-of reads).",
    )

    # supply and demand
    approval_working_days: int | None = Field(
        default=None,
        ge=1,
        le=60,
        description="Working days a provider has to answer a conditional demand before it is "
        "approved by timeout. Default: catalogs/calendar.yml (10).",
    )
    grant_valid_days: int = Field(
        default=365, ge=1, description="Validity of an approved or timed-out grant, in days."
    )

    # API (hub serve)
    audit_url: str = Field(
        default="",
        description="Audit log: postgresql://... or sqlite:///<file>. Default: the PostgreSQL "
        "warehouse, else HUB_HOME/ops/audit.sqlite.",
    )
    audit_anchor_every_s: float = Field(
        default=5.0, gt=0, description="How often the audit writer signs the chain's head."
    )
    audit_anchor_slack_s: float = Field(
        default=30.0,
        ge=0,
        description="Beyond twice the anchor interval, how late an anchor may be before "
        "`hub audit verify` calls the anchors between deleted.",
    )
    audit_anchor_dir: Path | None = Field(
        default=None,
        description="Where exported anchors are kept (`hub audit anchor --export`, the "
        "maintenance DAG): outside the hub's state. Default on the demo: HUB_HOME/anchors.",
    )
    api_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long the API keeps a key or an application's grants before "
        "reading them again: a revocation takes effect within this time.",
    )
    api_rate_per_second: float = Field(
        default=1000.0, ge=0, description="Requests a second per application (0: no limit)."
    )
    api_rate_burst: int = Field(default=2000, ge=1, description="Burst per application.")
    api_max_page: int = Field(default=1000, ge=1, description="Most records one page returns.")
    api_switch_interval_s: float = Field(
        default=0.001,
        gt=0,
        description="Python's GIL switch interval in the API process (default 5 ms there).",
    )
    redis_url: str = Field(
        default="",
        description="redis://...: rate limits shared by every API process of the cluster. "
        "Default: the ops store (a SQLite file, or the PostgreSQL warehouse).",
    )
    api_max_body_bytes: int = Field(
        default=65_536, ge=1_024, description="Largest request body the API reads (413 above)."
    )
    api_max_header_bytes: int = Field(
        default=16_384, ge=1_024, description="Largest total of request headers (431 above)."
    )
    api_max_query_bytes: int = Field(
        default=4_096, ge=256, description="Longest query string (414 above)."
    )
    api_max_fields: int = Field(
        default=200, ge=1, description="Most fields one demand or request may name."
    )
    api_cursor_ttl_s: int = Field(
        default=3_600, ge=60, description="How long a `next` cursor stays valid."
    )

    crypto_profile: Literal["standard", "gm"] = Field(
        default="standard",
        description="standard: Ed25519, SHA-256, AES-GCM. gm: the national commercial "
        "algorithms (SM2 signatures, SM3 digests, SM4) for a GB/T 39786 assessment.",
    )

    # applicant assertions (applicant-only grants): an identity provider the bureau trusts
    idp_jwks: str = Field(
        default="",
        description="The trusted identity provider's public keys: a JWKS file path or an "
        "https:// URL. Default under the demo profile: the local identity provider's "
        "(`hub idp`); elsewhere applicant-only grants are refused until it is set.",
    )
    idp_issuer: str = Field(default="", description="The `iss` its assertions carry.")
    idp_audience: str = Field(
        default="exchange-hub", description="The `aud` an assertion must carry: this hub."
    )
    idp_max_ttl_s: int = Field(
        default=600, ge=10, le=86_400, description="Longest lifetime (exp - iat) accepted."
    )
    idp_jwks_cache_s: float = Field(default=300.0, ge=0, description="JWKS URL refresh.")

    # the portal (hub/portal, mounted at /portal in hub serve)
    portal_session_hours: float = Field(
        default=8.0, gt=0, le=24 * 30, description="How long a portal sign-in lasts."
    )
    portal_max_failures: int = Field(
        default=5, ge=1, description="Wrong passwords in a row that lock a portal account."
    )
    portal_lockout_minutes: float = Field(
        default=15.0, gt=0, description="How long a locked portal account stays locked."
    )
    portal_cookie_secure: bool = Field(
        default=False, description="Mark the session cookie Secure (set it behind HTTPS)."
    )
    portal_url: str = Field(
        default="", description="The portal's address in reminders (default: none given)."
    )
    airflow_url: str = Field(
        default="http://127.0.0.1:8080", description="The Airflow UI, linked from the portal."
    )

    # reminders of demands nearing their deadline and overdue (hub.portal.reminders)
    reminder_channels: str = Field(
        default="",
        pattern=r"^(|email|webhook|email,webhook|webhook,email)$",
        description="email, webhook or both (comma-separated); empty: none is sent.",
    )
    reminder_due_working_days: int = Field(
        default=3,
        ge=1,
        le=20,
        description="A demand due within this many working days is 'nearing its deadline'.",
    )
    smtp_host: str = Field(default="", description="SMTP server for reminder e-mails.")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP session to TLS.")
    smtp_user: str = Field(default="", description="SMTP user (password: HUB_SECRET_SMTP).")
    smtp_from: str = Field(default="exchange-hub@localhost", description="The From address.")
    reminder_email_to: str = Field(
        default="",
        description="Addresses (comma-separated) that get every reminder besides the "
        "provider's and the data bureau's portal users with an e-mail.",
    )
    reminder_webhook_url: str = Field(
        default="", description="URL that receives each reminder as a JSON POST."
    )

    # bulk sharing (Delta Sharing protocol, hub.sharing and hub.serve.sharing)
    public_url: str = Field(
        default="",
        description="The hub's address as clients reach it (https://hub.example); file URLs "
        "and profiles use it. Default: the address each request was sent to.",
    )
    sharing_dir: Path | None = Field(
        default=None,
        description="Per-grant shared files, written at publish. Default: HUB_HOME/sharing "
        "(with several hosts: a volume the publishing workers and the API share).",
    )
    sharing_url_seconds: int = Field(
        default=900, ge=10, le=86_400, description="Lifetime of a signed file URL."
    )
    sharing_file_rows: int = Field(
        default=500_000, ge=1_000, description="Rows per shared data file (one file per part)."
    )

    @field_validator(
        "home", "catalog_dir", "landing_dir", "audit_anchor_dir", "sharing_dir", mode="after"
    )
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @model_validator(mode="after")
    def _defaults_under_home(self) -> Settings:
        if not self.warehouse_url:
            self.warehouse_url = f"duckdb:///{self.home / 'warehouse.duckdb'}"
        if self.landing_dir is None:
            self.landing_dir = self.home / "landing"
        if self.sharing_dir is None:
            self.sharing_dir = self.home / "sharing"
        self.public_url = self.public_url.rstrip("/")
        if self.public_url and urlsplit(self.public_url).scheme not in {"http", "https"}:
            raise ValueError(
                f"HUB_PUBLIC_URL: expected http(s)://host[:port][/prefix], got {self.public_url!r}"
            )
        try:
            engine: str | None = parse_store_url(self.warehouse_url).engine
        except ValueError:
            engine = None
        if engine not in {"duckdb", "postgres"}:
            scheme = urlsplit(self.warehouse_url).scheme
            raise ValueError(
                f"HUB_WAREHOUSE_URL: expected duckdb:///<file> or postgresql://..., got {scheme!r}"
            )
        return self

    @property
    def demo(self) -> bool:
        """The demo profile (``HUB_PROFILE=demo``): the explicit opt-in to its defaults."""
        return self.profile == "demo"

    @property
    def systems_dir(self) -> Path:
        """HUB_HOME/systems: the demo's department systems and their ``demo.env``."""
        return self.home / "systems"

    @property
    def landing(self) -> Path:
        assert self.landing_dir is not None
        return self.landing_dir

    @property
    def sharing(self) -> Path:
        """Where the shared files live (HUB_SHARING_DIR)."""
        assert self.sharing_dir is not None
        return self.sharing_dir

    @property
    def warehouse_engine(self) -> str:
        """``duckdb`` or ``postgres``."""
        return parse_store_url(self.warehouse_url).engine

    def demo_environment(self) -> dict[str, str]:
        """The demo profile's ``HUB_CONN_*`` / ``HUB_SECRET_*`` values (``demo.env``); empty
        outside the demo profile or before the demo's systems were built."""
        path = self.systems_dir / DEMO_ENV_FILE
        if not self.demo or not path.exists():
            return {}
        values: dict[str, str] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            name, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#"):
                values[name.strip()] = value.strip()
        return values

    def _missing(self, variable: str, what: str) -> SettingsError:
        if self.demo:
            return SettingsError(
                f"{variable} is not set: no {what}, and the demo profile found none in "
                f"{self.systems_dir / DEMO_ENV_FILE} (build the demo's systems first: "
                "`hub simulate`)"
            )
        return SettingsError(
            f"{variable} is not set: no {what} (outside the demo every connection and "
            "secret must be set; HUB_PROFILE=demo opts into the demo's)"
        )

    def connection(self, name: str) -> str:
        """The URI for connection ``name``: ``HUB_CONN_<NAME>`` (under the demo profile,
        else the demo's ``demo.env``).

        Raises SettingsError naming the variable when it is not set or its secret is a
        placeholder.
        """
        env_name = f"HUB_CONN_{name.upper()}"
        uri = os.environ.get(env_name) or self.demo_environment().get(env_name)
        if not uri:
            raise self._missing(env_name, f"connection for {name!r}")
        password = urlsplit(uri).password
        if password is not None and password.lower() in PLACEHOLDER_SECRETS:
            raise SettingsError(f"{env_name}: the secret is a placeholder ({password!r}); set it")
        return uri

    def secret(self, name: str) -> str:
        """A named secret from ``HUB_SECRET_<NAME>`` (e.g. an API token); under the demo
        profile, else the demo's ``demo.env``.

        Raises SettingsError naming the variable when it is not set, empty or a placeholder.
        """
        env_name = f"HUB_SECRET_{name.upper()}"
        value = os.environ.get(env_name)
        if value is None:
            value = self.demo_environment().get(env_name)
        if value is None:
            raise self._missing(env_name, f"secret {name.lower()!r}")
        value = value.strip()
        if not value or value.lower() in PLACEHOLDER_SECRETS:
            raise SettingsError(f"{env_name}: empty or a placeholder; set it")
        return value


_settings: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment between cases)."""
    global _settings
    _settings = None


@contextmanager
def scoped_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in os.environ for the block, then restore what was there (dbt reads
    its profile and Airflow its configuration from the environment)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
