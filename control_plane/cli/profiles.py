"""``cpctl`` profiles: named API endpoints and credentials in a private TOML file.

The file lives at ``$CPCTL_CONFIG`` or ``~/.config/cpctl/profiles.toml`` (under
``$XDG_CONFIG_HOME`` when set), is written atomically with mode 0600, and holds secrets:
API keys and session tokens are never printed back.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

CONFIG_ENV = "CPCTL_CONFIG"
PROFILE_ENV = "CPCTL_PROFILE"
URL_ENV = "CP_URL"
API_KEY_ENV = "CP_API_KEY"
DEFAULT_PROFILE = "default"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ProfileError(Exception):
    """A profile is missing, misnamed or the file is unreadable."""


@dataclass(frozen=True)
class Profile:
    """Where the API is and how to authenticate (an API key, or a signed-in session)."""

    url: str
    api_key: str | None = None
    session_token: str | None = None
    csrf_token: str | None = None
    session_email: str | None = None
    session_expires_at: str | None = None

    @property
    def auth_label(self) -> str:
        """How this profile authenticates, without revealing the secret."""
        if self.api_key:
            parts = self.api_key.split("_")
            # Only the lookup prefix, which the API itself lists; never the secret part.
            shaped = len(parts) >= 3 and parts[0] == "cpk" and len(parts[1]) == 12
            return f"api key {parts[0]}_{parts[1]}" if shaped else "api key"
        if self.session_token:
            return f"session ({self.session_email or 'signed in'})"
        return "none"

    def with_api_key(self, api_key: str | None) -> Profile:
        """One credential per profile: setting a key forgets any session."""
        return replace(
            self,
            api_key=api_key,
            session_token=None,
            csrf_token=None,
            session_email=None,
            session_expires_at=None,
        )

    def with_session(
        self, token: str, csrf_token: str, email: str, expires_at: str | None
    ) -> Profile:
        return replace(
            self,
            api_key=None,
            session_token=token,
            csrf_token=csrf_token,
            session_email=email,
            session_expires_at=expires_at,
        )

    def without_session(self) -> Profile:
        return replace(
            self, session_token=None, csrf_token=None, session_email=None, session_expires_at=None
        )


@dataclass
class ProfileStore:
    """All profiles and which one is current."""

    path: Path
    profiles: dict[str, Profile] = field(default_factory=dict)
    current: str | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> ProfileStore:
        path = path or config_path()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ProfileError(f"cannot read {path}: {exc}") from exc
        store = cls(path)
        raw_profiles = data.get("profiles", {})
        if not isinstance(raw_profiles, dict):
            raise ProfileError(f"{path}: [profiles] must be a table")
        for name, raw in raw_profiles.items():
            store.profiles[name] = _profile_from(path, name, raw)
        current = data.get("current")
        store.current = current if isinstance(current, str) else None
        return store

    def save(self) -> None:
        """Write the file atomically, readable by its owner only."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=".profiles-", dir=self.path.parent)
        try:
            os.fchmod(handle, stat.S_IRUSR | stat.S_IWUSR)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(self.to_toml())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def to_toml(self) -> str:
        lines = ["# cpctl profiles: holds secrets, keep this file private (mode 0600)."]
        if self.current:
            lines.append(f"current = {toml_string(self.current)}")
        for name in sorted(self.profiles):
            lines += ["", f"[profiles.{name}]"]
            for f in fields(Profile):
                value = getattr(self.profiles[name], f.name)
                if value is not None:
                    lines.append(f"{f.name} = {toml_string(value)}")
        return "\n".join(lines) + "\n"

    def get(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            raise ProfileError(
                f"no profile {name!r}; add one with: cpctl profile add {name} --url URL"
            ) from None

    def put(self, name: str, profile: Profile) -> None:
        check_name(name)
        self.profiles[name] = profile
        if self.current is None:
            self.current = name

    def remove(self, name: str) -> None:
        self.get(name)
        del self.profiles[name]
        if self.current == name:
            self.current = None

    def selected_name(self, requested: str | None) -> str:
        """``--profile``/``CPCTL_PROFILE``, else the current profile, else ``default``."""
        return requested or self.current or DEFAULT_PROFILE


@dataclass(frozen=True)
class Connection:
    """What a command connects with after profile and environment are combined."""

    profile_name: str | None
    url: str
    api_key: str | None
    session_token: str | None
    csrf_token: str | None


def resolve(
    store: ProfileStore, requested: str | None, env: Mapping[str, str] | None = None
) -> Connection:
    """Combine the selected profile with ``CP_URL``/``CP_API_KEY`` (the environment wins)."""
    env = os.environ if env is None else env
    name = store.selected_name(requested)
    profile = store.profiles.get(name)
    if profile is None and (requested or not env.get(URL_ENV)):
        store.get(name)  # raises with a hint
    url = env.get(URL_ENV) or (profile.url if profile else "")
    api_key = env.get(API_KEY_ENV) or None
    if api_key is not None or profile is None:
        return Connection(name if profile else None, url, api_key, None, None)
    return Connection(name, url, profile.api_key, profile.session_token, profile.csrf_token)


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "cpctl" / "profiles.toml"


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ProfileError("profile names are 1-64 letters, digits, '-' or '_'")


def toml_string(value: str) -> str:
    """A TOML basic string (escapes every control character)."""
    out = ['"']
    for char in value:
        code = ord(char)
        if char in {'"', "\\"}:
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _profile_from(path: Path, name: str, raw: object) -> Profile:
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
        raise ProfileError(f"{path}: profile {name!r} needs a url")
    known = {f.name for f in fields(Profile)}
    values = {k: str(v) for k, v in raw.items() if k in known and isinstance(v, str)}
    return Profile(**values)
