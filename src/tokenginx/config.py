"""One typed configuration: built-in defaults < YAML file < ``TOKENGINX_*`` env < flags.

Keys follow the contract's YAML layout (``server.tcp_addr``, ``logging.level``…). A key
this version does not know is an error, never silently ignored: a typo in a security
setting must not leave the server running with the default.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


@dataclass
class ServerConfig:
    tcp_addr: str = "127.0.0.1:6380"
    http_addr: str = "127.0.0.1:8080"
    grpc_addr: str = "127.0.0.1:9090"
    # Extra addresses to listen on for RESP; a leading "-" means "skip if unavailable"
    # (Redis's ``bind 127.0.0.1 -::1``).
    extra_tcp_binds: list[str] = field(default_factory=lambda: ["-::1"])
    # Seconds a client may stay idle before it is closed; 0 = never (Redis ``timeout``).
    idle_timeout: int = 0
    tcp_keepalive: int = 300
    max_connections: int = 10000
    requirepass: str = ""
    databases: int = 16
    # Redis ``client-output-buffer-limit pubsub``: hard bytes, soft bytes, soft seconds.
    pubsub_output_hard_bytes: int = 32 * 1024 * 1024
    pubsub_output_soft_bytes: int = 8 * 1024 * 1024
    pubsub_output_soft_seconds: int = 60
    notify_keyspace_events: str = ""
    slowlog_log_slower_than_us: int = 10000
    slowlog_max_len: int = 128
    shutdown_timeout: float = 10.0


@dataclass
class LimitsConfig:
    key_bytes: int = 64 * 1024
    value_bytes: int = 16 * 1024 * 1024
    # The largest single argument the RESP parser takes (Redis's proto-max-bulk-len).
    # An argument over value_bytes/key_bytes but under this gets a normal error reply
    # and the connection stays; over this the request is a protocol error.
    bulk_bytes: int = 32 * 1024 * 1024
    multibulk_len: int = 1024 * 1024
    inline_bytes: int = 64 * 1024
    query_buffer_bytes: int = 1024 * 1024 * 1024
    http_body_bytes: int = 16 * 1024 * 1024


@dataclass
class StorageConfig:
    # Where persistent data lives; empty = $XDG_DATA_HOME/tokenginx (~/.local/share/tokenginx).
    data_dir: str = ""


@dataclass
class PersistenceConfig:
    enabled: bool = True
    fsync: str = "everysec"  # always | everysec | no
    repair: bool = False  # start despite damage in the middle of a file, dropping it
    snapshot_min_log_mb: int = 64  # compact the log once it is this big ...
    snapshot_growth_ratio: float = 1.0  # ... and this many times the last snapshot
    save_on_shutdown: bool = True


@dataclass
class CacheConfig:
    # 0 = no limit. Over the limit, writes are refused or keys evicted per policy.
    max_memory_mb: int = 0
    eviction_policy: str = "noeviction"


@dataclass
class TTLConfig:
    # Active expiry: cycles per second and the time budget of one cycle.
    hz: int = 10
    cycle_budget_ms: float = 1.0


@dataclass
class LoggingConfig:
    level: str = "info"
    format: str = "text"
    output: str = "stderr"
    file_path: str = ""


@dataclass
class SecurityConfig:
    # Bearer keys accepted by the HTTP and gRPC doors (``Authorization: Bearer <key>``).
    # Each grants what the ``requirepass`` password grants on RESP. Empty list and
    # empty requirepass = no authentication, as Redis without a password.
    api_keys: list[str] = field(default_factory=list)


@dataclass
class HTTPConfig:
    enabled: bool = True
    # Origins allowed by CORS; empty = CORS off. ``*`` allows any origin.
    cors_origins: list[str] = field(default_factory=list)
    # Responses at least this big are gzip-compressed when the client accepts gzip.
    gzip_min_bytes: int = 1024
    # Seconds between heartbeat comments on idle event streams.
    sse_heartbeat_seconds: float = 15.0
    # Interactive API docs at /docs (the OpenAPI document is always served).
    docs: bool = True
    # Request heads: at most this many header fields and bytes (request line included),
    # else 431; the whole head must arrive within header_timeout_s of its first byte
    # (or of the connection), else 408 and close (slowloris).
    max_headers: int = 100
    max_header_bytes: int = 32 * 1024
    header_timeout_s: float = 10.0
    # A request body that stalls this long between two chunks closes the connection.
    body_timeout_s: float = 30.0


@dataclass
class GRPCConfig:
    enabled: bool = True
    max_message_bytes: int = 16 * 1024 * 1024
    reflection: bool = True


@dataclass
class OAuthProtocolConfig:
    enabled: bool = True
    key_prefix: str = "oauth"
    default_token_ttl: int = 3600
    default_refresh_token_ttl: int = 2592000
    default_code_ttl: int = 600
    default_id_token_ttl: int = 3600


@dataclass
class SAMLProtocolConfig:
    enabled: bool = True
    key_prefix: str = "saml"
    default_session_ttl: int = 28800
    default_assertion_ttl: int = 1800
    default_artifact_ttl: int = 300
    default_logout_ttl: int = 300


@dataclass
class CASProtocolConfig:
    enabled: bool = True
    key_prefix: str = "cas"
    default_tgt_ttl: int = 7200
    default_st_ttl: int = 300
    default_pgt_ttl: int = 7200
    default_pt_ttl: int = 300


@dataclass
class ProtocolsConfig:
    oauth: OAuthProtocolConfig = field(default_factory=OAuthProtocolConfig)
    saml: SAMLProtocolConfig = field(default_factory=SAMLProtocolConfig)
    cas: CASProtocolConfig = field(default_factory=CASProtocolConfig)


@dataclass
class IdPConfig:
    """The built-in identity provider shared by the OAuth/OIDC and CAS servers: user
    accounts, the login page and its browser session, the seed 001 login API."""

    # On when the OAuth or CAS server is on; set it alone for accounts and /api/v1/auth.
    enabled: bool = False
    # The public base URL (OIDC ``iss``, absolute links); empty = http://<server.http_addr>.
    issuer: str = ""
    # Anyone may create an account (POST /api/v1/auth/register).
    registration: bool = False
    # Seconds a browser login (the SSO cookie) lasts.
    session_ttl: int = 28800
    # Seconds a bearer token from POST /api/v1/auth/login lasts.
    login_token_ttl: int = 3600
    # Contract §8.7: this many consecutive failures for one username from one client IP
    # lock that pair for lockout_seconds (others behind the same proxy are unaffected).
    lockout_threshold: int = 5
    lockout_seconds: int = 900
    # Failures for one username from all addresses that lock the account; 0 = never.
    lockout_user_threshold: int = 50
    # Failures from one client IP (any usernames) that lock that IP out; 0 = no IP lockout.
    lockout_ip_threshold: int = 100
    # Progressive delay: the n-th consecutive failure (n >= 2) waits
    # lockout_delay_ms * 2**(n-2) ms (at most 5 s) before answering; 0 = none.
    lockout_delay_ms: int = 200
    # Shortest password accepted when an account is created or its password reset.
    password_min_length: int = 8

    def validate(self) -> None:
        for name in ("session_ttl", "login_token_ttl", "lockout_threshold", "lockout_seconds",
                     "password_min_length"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"idp.{name} must be positive")
        for name in ("lockout_ip_threshold", "lockout_user_threshold", "lockout_delay_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"idp.{name} must not be negative")
        if self.issuer and not self.issuer.startswith(("https://", "http://")):
            raise ConfigError("idp.issuer must be an http:// or https:// URL")


@dataclass
class OAuthServerConfig:
    """The built-in OAuth 2.0 / OpenID Connect authorization server."""

    enabled: bool = False
    # Clients declared in the config file: mappings with client_id, client_secret (absent
    # for public clients), redirect_uris, grant_types, scopes, token_endpoint_auth_method,
    # backchannel_logout_uri, id_token_signed_response_alg (RS256|ES256), resource_server.
    clients: list[dict] = field(default_factory=list)
    # Token lifetimes in seconds; 0 = the protocols.oauth default of the same kind.
    access_token_ttl: int = 0
    refresh_token_ttl: int = 0
    id_token_ttl: int = 0
    # Seconds a signing key signs before a new one replaces it (0 = never rotate on a
    # schedule; POST /api/v1/admin/oauth/keys/rotate still does).
    key_rotation_seconds: int = 7776000
    # RFC 7636 "plain" PKCE; off by default (decisions.md §14): S256 only.
    allow_plain_pkce: bool = False

    def validate(self) -> None:
        for name in ("access_token_ttl", "refresh_token_ttl", "id_token_ttl", "key_rotation_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"oauth.server.{name} must not be negative")
        from tokenginx.idp.clients import ClientError, Clients

        try:
            Clients.check(self.clients)
        except ClientError as e:
            raise ConfigError(str(e)) from None


@dataclass
class OAuthConfig:
    server: OAuthServerConfig = field(default_factory=OAuthServerConfig)


@dataclass
class CASServerConfig:
    """The built-in CAS 1.0/2.0/3.0 server endpoints under /cas."""

    enabled: bool = False
    # Service allow-list: a service URL is accepted when it starts with one of these (the
    # match must end at "/", "?", "#", ":" or the end of the URL unless the entry ends with "/").
    services: list[str] = field(default_factory=list)
    # Contract §7.3: refuse (403 "HTTPS required") a request that did not arrive over TLS.
    require_https: bool = False
    # Services may ask for proxy-granting tickets (pgtUrl, /cas/proxy: CAS 2.0 proxying).
    proxy: bool = True
    # A pgtUrl must be https:// (CAS 3.0 §2.5.4); this allows http:// (development only).
    allow_http_proxy_callback: bool = False
    # Back-channel single logout to every service of a TGT when its browser login ends.
    single_logout: bool = True
    # "cas3": POST {service} with form field logoutRequest, SessionIndex = the ST (CAS 3.0
    # §2.3.3); "xml": POST {service}/cas-logout with an application/xml body whose
    # SessionIndex is the TGT id (contract §7.2).
    slo_format: str = "cas3"
    # Seconds to wait for a proxy callback or a logout notification.
    callback_timeout_s: float = 5.0
    # TGT lifetime in seconds; 0 = idp.session_ttl (a TGT lasts as long as the browser login).
    tgt_ttl: int = 0

    def validate(self) -> None:
        if self.slo_format not in ("cas3", "xml"):
            raise ConfigError("cas.server.slo_format must be cas3 or xml")
        if not 0 < self.callback_timeout_s <= 60:
            raise ConfigError("cas.server.callback_timeout_s must be between 0 and 60")
        if self.tgt_ttl < 0:
            raise ConfigError("cas.server.tgt_ttl must be 0 (idp.session_ttl) or positive")


@dataclass
class CASConfig:
    server: CASServerConfig = field(default_factory=CASServerConfig)


@dataclass
class ScriptingConfig:
    """Lua scripts (EVAL): Redis's busy-reply-threshold and a memory ceiling."""

    # After this long a running script makes the server "busy": other RESP clients get
    # -BUSY (SCRIPT KILL and SHUTDOWN NOSAVE still work). Redis's lua-time-limit.
    busy_reply_threshold_ms: int = 5000
    # The Lua runtime's memory ceiling; a script allocating past it gets an error.
    max_memory_mb: int = 256


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    persistence: PersistenceConfig = field(default_factory=PersistenceConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    ttl: TTLConfig = field(default_factory=TTLConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    grpc: GRPCConfig = field(default_factory=GRPCConfig)
    protocols: ProtocolsConfig = field(default_factory=ProtocolsConfig)
    idp: IdPConfig = field(default_factory=IdPConfig)
    oauth: OAuthConfig = field(default_factory=OAuthConfig)
    cas: CASConfig = field(default_factory=CASConfig)
    scripting: ScriptingConfig = field(default_factory=ScriptingConfig)

    # -- construction ---------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Config:
        """Defaults, then the YAML file, then ``TOKENGINX_*`` env, then ``overrides``.

        ``overrides`` maps dotted keys (``"server.tcp_addr"``) to values.
        """
        cfg = cls()
        if path is not None:
            cfg.apply_mapping(_read_yaml(Path(path)), source=str(path))
        cfg.apply_env(os.environ if env is None else env)
        for key, value in (overrides or {}).items():
            cfg.set(key, value, source="command line")
        cfg.validate()
        return cfg

    def apply_mapping(self, data: Mapping[str, Any], source: str = "config") -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: the top level must be a mapping")
        for section, values in data.items():
            if section not in _sections():
                raise ConfigError(f"{source}: unknown config key '{section}'")
            if values is None:
                continue
            self._apply_section(section, values, source)

    def _apply_section(self, prefix: str, values: Any, source: str) -> None:
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: '{prefix}' must be a mapping")
        for key, value in values.items():
            dotted = f"{prefix}.{key}"
            if isinstance(value, Mapping) and dataclasses.is_dataclass(self._resolve(dotted, source)[1]):
                self._apply_section(dotted, value, source)
            else:
                self.set(dotted, value, source=source)

    def apply_env(self, env: Mapping[str, str]) -> None:
        for var, value in env.items():
            if not var.startswith("TOKENGINX_"):
                continue
            key = ENV_ALIASES.get(var) or _env_to_key(var)
            if key is None:
                continue  # client-side variables (TOKENGINX_HOST…) are not ours
            self.set(key, value, source=f"environment {var}")

    # -- dotted access ----------------------------------------------------------
    def _resolve(self, key: str, source: str = "config") -> tuple[Any, Any, str]:
        """``(owner object, field type, field name)`` of a dotted key, at any depth."""
        parts = key.split(".")
        if len(parts) < 2 or parts[0] not in _sections():
            raise ConfigError(f"{source}: unknown config key '{key}'")
        owner: Any = self
        for i, name in enumerate(parts):
            ftype = _field_types(type(owner)).get(name)
            if ftype is None:
                raise ConfigError(f"{source}: unknown config key '{key}'")
            if i == len(parts) - 1:
                return owner, ftype, name
            owner = getattr(owner, name)
            if not dataclasses.is_dataclass(owner):
                raise ConfigError(f"{source}: unknown config key '{key}'")
        raise AssertionError("unreachable")

    def get(self, key: str) -> Any:
        owner, _, name = self._resolve(key)
        return getattr(owner, name)

    def set(self, key: str, value: Any, source: str = "config") -> None:
        owner, ftype, name = self._resolve(key, source)
        if dataclasses.is_dataclass(ftype):
            raise ConfigError(f"{source}: '{key}' is a section; set its keys instead")
        setattr(owner, name, _coerce(value, ftype, key, source))

    def keys(self) -> list[str]:
        """Every settable dotted key, nested sections flattened."""
        out: list[str] = []

        def walk(prefix: str, cls: type) -> None:
            for name, ftype in _field_types(cls).items():
                if dataclasses.is_dataclass(ftype):
                    walk(f"{prefix}.{name}", ftype)
                else:
                    out.append(f"{prefix}.{name}")

        for section, cls in _sections().items():
            walk(section, cls)
        return out

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    # -- the application API's flat names (the PyLiteFlux seed's config object) ----------
    # ``config.http_port = 8000`` / ``config.update(tcp_keep_alive=True)`` map onto the
    # keys above; set them before ``Server.run()``. Unknown names are an error.
    def update(self, **settings: Any) -> None:
        """Set several of :data:`APP_SETTINGS` at once (all checked before any is set)."""
        unknown = [k for k in settings if k not in APP_SETTINGS]
        if unknown:
            raise ConfigError(
                f"unknown config key '{unknown[0]}' (known: {', '.join(APP_SETTINGS)})"
            )
        for key, value in settings.items():
            setattr(self, key, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and name not in _attribute_names():
            raise ConfigError(f"unknown config key '{name}'")
        object.__setattr__(self, name, value)

    @property
    def http_host(self) -> str:
        return parse_addr(self.server.http_addr, "server.http_addr")[0]

    @http_host.setter
    def http_host(self, host: str) -> None:
        self.server.http_addr = format_addr(_host(host, "http_host"), self.http_port)

    @property
    def http_port(self) -> int:
        return parse_addr(self.server.http_addr, "server.http_addr")[1]

    @http_port.setter
    def http_port(self, port: int) -> None:
        self.server.http_addr = format_addr(self.http_host, _port(port, "http_port"))

    @property
    def tcp_host(self) -> str:
        return parse_addr(self.server.tcp_addr, "server.tcp_addr")[0]

    @tcp_host.setter
    def tcp_host(self, host: str) -> None:
        self.server.tcp_addr = format_addr(_host(host, "tcp_host"), self.tcp_port)

    @property
    def tcp_port(self) -> int:
        return parse_addr(self.server.tcp_addr, "server.tcp_addr")[1]

    @tcp_port.setter
    def tcp_port(self, port: int) -> None:
        self.server.tcp_addr = format_addr(self.tcp_host, _port(port, "tcp_port"))

    @property
    def tcp_keep_alive(self) -> bool:
        """TCP keepalive probes on client connections (``server.tcp_keepalive`` > 0)."""
        return self.server.tcp_keepalive > 0

    @tcp_keep_alive.setter
    def tcp_keep_alive(self, on: bool) -> None:
        on = _coerce(on, bool, "tcp_keep_alive", "config")
        if not on:
            self.server.tcp_keepalive = 0
        elif self.server.tcp_keepalive <= 0:
            self.server.tcp_keepalive = ServerConfig.tcp_keepalive

    @property
    def info(self) -> bool:
        """Informational log lines on (``logging.level`` debug or info)."""
        return self.logging.level.lower() in ("debug", "info")

    @info.setter
    def info(self, on: bool) -> None:
        on = _coerce(on, bool, "info", "config")
        if on and not self.info:
            self.logging.level = "info"
        elif not on and self.info:
            self.logging.level = "warning"

    def validate(self) -> None:
        s = self.server
        for key in ("tcp_addr", "http_addr", "grpc_addr"):
            parse_addr(getattr(s, key), f"server.{key}")
        if not 1 <= s.databases <= 1024:
            raise ConfigError("server.databases must be between 1 and 1024")
        if s.max_connections < 1:
            raise ConfigError("server.max_connections must be at least 1")
        h = self.http
        if h.max_headers < 1 or h.max_header_bytes < 1024:
            raise ConfigError("http.max_headers must be >= 1 and http.max_header_bytes >= 1024")
        if h.header_timeout_s <= 0 or h.body_timeout_s <= 0:
            raise ConfigError("http.header_timeout_s and http.body_timeout_s must be positive")
        if self.scripting.busy_reply_threshold_ms < 0:
            raise ConfigError("scripting.busy_reply_threshold_ms must be 0 or more")
        if self.scripting.max_memory_mb < 1:
            raise ConfigError("scripting.max_memory_mb must be at least 1")
        if self.logging.level.lower() not in ("debug", "info", "warn", "warning", "error"):
            raise ConfigError("logging.level must be debug, info, warn or error")
        if self.logging.format not in ("json", "text"):
            raise ConfigError("logging.format must be json or text")
        if self.logging.output not in ("stdout", "stderr", "file"):
            raise ConfigError("logging.output must be stdout, stderr or file")
        if self.cache.eviction_policy not in EVICTION_POLICIES:
            raise ConfigError(
                "cache.eviction_policy must be one of " + ", ".join(EVICTION_POLICIES)
            )
        if self.persistence.fsync not in ("always", "everysec", "no"):
            raise ConfigError("persistence.fsync must be always, everysec or no")
        if self.ttl.hz < 1 or self.ttl.hz > 500:
            raise ConfigError("ttl.hz must be between 1 and 500")
        for name, value in dataclasses.asdict(self.limits).items():
            if value <= 0:
                raise ConfigError(f"limits.{name} must be positive")
        if self.grpc.max_message_bytes <= 0:
            raise ConfigError("grpc.max_message_bytes must be positive")
        if self.http.sse_heartbeat_seconds <= 0:
            raise ConfigError("http.sse_heartbeat_seconds must be positive")
        for key in self.keys():
            if key.startswith("protocols.") and key.endswith("_ttl") and self.get(key) <= 0:
                raise ConfigError(f"{key} must be positive")
        if any(not k for k in self.security.api_keys):
            raise ConfigError("security.api_keys must not contain an empty key")
        self.idp.validate()
        self.oauth.server.validate()
        self.cas.server.validate()


# The flat names of the application API's config object (``Config.update``).
APP_SETTINGS = ("http_host", "http_port", "tcp_host", "tcp_port", "tcp_keep_alive", "info")

_ATTRIBUTE_NAMES: frozenset[str] = frozenset()


def _attribute_names() -> frozenset[str]:
    global _ATTRIBUTE_NAMES
    if not _ATTRIBUTE_NAMES:
        _ATTRIBUTE_NAMES = frozenset(f.name for f in dataclasses.fields(Config)) | frozenset(APP_SETTINGS)
    return _ATTRIBUTE_NAMES


def _host(host: Any, key: str) -> str:
    if not isinstance(host, str) or not host.strip() or any(c in host for c in "[]/ "):
        raise ConfigError(f"'{key}' expects a host name or address, got {host!r}")
    return host.strip()


def _port(port: Any, key: str) -> int:
    value = _coerce(port, int, key, "config")
    if not 0 <= value <= 65535:
        raise ConfigError(f"'{key}': port {value} out of range")
    return value


EVICTION_POLICIES = (
    "noeviction",
    "allkeys-lru",
    "volatile-lru",
    "allkeys-random",
    "volatile-random",
    "volatile-ttl",
)

# The contract's short environment names (§9.3); any other TOKENGINX_<SECTION>_<KEY>
# maps to ``section.key``.
ENV_ALIASES = {
    "TOKENGINX_TCP_ADDR": "server.tcp_addr",
    "TOKENGINX_HTTP_ADDR": "server.http_addr",
    "TOKENGINX_GRPC_ADDR": "server.grpc_addr",
    "TOKENGINX_DATA_DIR": "storage.data_dir",
    "TOKENGINX_LOG_LEVEL": "logging.level",
    "TOKENGINX_REQUIREPASS": "server.requirepass",
}


def data_dir(cfg: Config) -> str:
    """The persistence directory: ``storage.data_dir`` or the per-user default."""
    if cfg.storage.data_dir:
        return os.path.abspath(os.path.expanduser(cfg.storage.data_dir))
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "tokenginx")


def parse_addr(addr: str, key: str = "address") -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` to ``(host, port)``."""
    m = re.fullmatch(r"\[(?P<h6>[^\]]+)\]:(?P<p6>\d+)|(?P<h>[^:\[\]]*):(?P<p>\d+)", addr or "")
    if not m:
        raise ConfigError(f"{key}: expected host:port, got {addr!r}")
    host = m.group("h6") or m.group("h") or "0.0.0.0"
    port = int(m.group("p6") or m.group("p"))
    if not 0 <= port <= 65535:
        raise ConfigError(f"{key}: port {port} out of range")
    return host, port


def format_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(_expand_placeholders(text)) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    return data


def _expand_placeholders(text: str) -> str:
    """``${VAR}`` in the file is replaced from the environment (contract §9.1)."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise ConfigError(f"config placeholder ${{{name}}} is not set in the environment")
        return os.environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", repl, text)


def _sections() -> dict[str, type]:
    return {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]


_TYPE_CACHE: dict[type, dict[str, Any]] = {}


def _field_types(cls: type) -> dict[str, Any]:
    cached = _TYPE_CACHE.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls)
        cached = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
        _TYPE_CACHE[cls] = cached
    return cached


def _env_to_key(var: str) -> str | None:
    """``TOKENGINX_PROTOCOLS_OAUTH_DEFAULT_TOKEN_TTL`` → ``protocols.oauth.default_token_ttl``:
    section and nested-section names are matched as prefixes, the rest is the key."""
    rest = var[len("TOKENGINX_") :].lower()
    for section, cls in _sections().items():
        prefix = section + "_"
        if not rest.startswith(prefix):
            continue
        key, rest = section, rest[len(prefix) :]
        while True:
            nested = [
                n for n, t in _field_types(cls).items()
                if dataclasses.is_dataclass(t) and rest.startswith(n + "_")
            ]
            if not nested:
                return f"{key}.{rest}"
            name = nested[0]
            key, cls, rest = f"{key}.{name}", _field_types(cls)[name], rest[len(name) + 1 :]
    return None


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(value: Any, ftype: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(ftype)
    try:
        if ftype is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in _TRUE:
                return True
            if s in _FALSE:
                return False
            raise ValueError
        if ftype is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if ftype is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if ftype is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return "" if value is None else str(value)
        if origin is list and typing.get_args(ftype) and typing.get_args(ftype)[0] is dict:
            if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
                raise ValueError
            return [dict(v) for v in value]
        if origin is list or ftype is list:
            if isinstance(value, str):
                return [v for v in re.split(r"[\s,]+", value) if v]
            if not isinstance(value, list):
                raise ValueError
            return [str(v) for v in value]
        if origin in (typing.Union, types.UnionType):
            return value
    except (TypeError, ValueError):
        pass
    else:
        return value
    name = getattr(ftype, "__name__", str(ftype))
    raise ConfigError(f"{source}: '{key}' expects {name}, got {value!r}")
