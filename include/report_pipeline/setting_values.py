"""How one setting is declared and read: the ``setting()`` field and the parsers of its text.

``settings.Settings`` declares each setting once, as a dataclass field made by ``setting()``: its
environment variable, its README line and how its text becomes a value. ``read_settings`` builds the
keyword arguments of that dataclass from an environment, and ``settingsdoc`` renders README's table from
the same declarations, so the variable, the field, the reader and the documentation cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from report_pipeline.errors import ConfigError
from report_pipeline.notifiers import AlertTarget, parse_notifiers

T = TypeVar("T")
# (variable name, its text, stripped of nothing) -> the value; raises ConfigError naming the variable.
Parse = Callable[[str, str], Any]
METADATA_KEY = "report_pipeline.setting"


def text(name: str, raw: str) -> str:
    """The text with surrounding blanks removed."""
    return raw.strip()


def verbatim(name: str, raw: str) -> str:
    """The text exactly as set (names and templates were always taken so)."""
    return raw


def path(name: str, raw: str) -> Path:
    """A file system path, as set."""
    return Path(raw)


def account_id(name: str, raw: str) -> str:
    """A 12-digit AWS account id."""
    owner = raw.strip()
    if not (owner.isdigit() and len(owner) == 12):
        raise ConfigError(f"{name}={owner!r} must be a 12-digit AWS account id")
    return owner


@dataclass(frozen=True)
class Setting:
    """What one ``Settings`` field is read from and how it is documented.

    ``env``: the variable. ``doc``: README's "meaning" cell. ``parse``: the variable's text (never empty,
    unless ``empty_is_default`` is off) to the value. ``shown``: README's "default" cell when the field's
    default does not read well there (a unit, a derived path, "(none)"). ``default_from``: the default
    when it depends on other variables (a path under ``AIRFLOW_HOME``). ``empty_is_default``: whether an
    empty value means the default (it does everywhere but where "empty" is a choice of its own).
    """

    env: str
    doc: str
    parse: Parse = text
    shown: str | None = None
    default_from: Callable[[Mapping[str, str]], Any] | None = None
    empty_is_default: bool = True


def setting(
    default: T,
    *,
    env: str,
    doc: str,
    parse: Parse = text,
    shown: str | None = None,
    default_from: Callable[[Mapping[str, str]], Any] | None = None,
    empty_is_default: bool = True,
) -> T:
    """A ``Settings`` field read from ``env``: the one declaration of a setting (see ``Setting``)."""
    declared = Setting(env, doc, parse, shown, default_from, empty_is_default)
    # The Field poses as the default's type, as dataclasses.field does for type checkers.
    return dataclasses.field(default=default, metadata={METADATA_KEY: declared})  # type: ignore[no-any-return]


def declared(cls: type) -> Iterator[tuple[dataclasses.Field[Any], Setting]]:
    """The fields of ``cls`` made by ``setting()``, in declaration order, with their declarations."""
    for f in dataclasses.fields(cls):
        found = f.metadata.get(METADATA_KEY)
        if found is not None:
            yield f, found


def read_settings(cls: type, env: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``cls`` from ``env``: each declared field parsed from its variable, or its default."""
    values: dict[str, Any] = {}
    for f, declaration in declared(cls):
        raw = env.get(declaration.env)
        if raw is None or (declaration.empty_is_default and not raw.strip()):
            values[f.name] = declaration.default_from(env) if declaration.default_from else f.default
        else:
            values[f.name] = declaration.parse(declaration.env, raw)
    return values


def whole(minimum: int = 0, scale: int = 1) -> Parse:
    """A whole number of at least ``minimum``, times ``scale`` (a number of MB read into bytes)."""

    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw.strip()!r} is not a whole number") from None
        if value < minimum:
            raise ConfigError(f"{name}={value} must be at least {minimum}")
        return value * scale

    return parse


def number(minimum: float = 0.0, maximum: float | None = None, meaning: str = "") -> Parse:
    """A finite number of at least ``minimum`` (and at most ``maximum``, whose message adds ``meaning``)."""

    def parse(name: str, raw: str) -> float:
        shown = raw.strip()
        try:
            value = float(shown)
        except ValueError:
            raise ConfigError(f"{name}={shown!r} is not a number") from None
        if not minimum <= value < float("inf"):  # NaN fails too
            raise ConfigError(f"{name}={shown} must be a finite number of at least {minimum:g}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{name}={value:g} must be between {minimum:g} and {maximum:g}{meaning}")
        return value

    return parse


_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def flag(name: str, raw: str) -> bool:
    """On or off: 1/0, true/false, yes/no, on/off, in any case."""
    value = raw.strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ConfigError(f"{name}={value!r} must be on or off (1/0, true/false)")


def choice(values: Mapping[str, Any], allowed: str, lower: bool = True) -> Parse:
    """One of ``values``' keys (lower-cased first unless ``lower`` is off), read as its value.

    ``allowed`` ends the message of any other text, e.g. ``"must be 'auto', 'off' or 'required'"``.
    """

    def parse(name: str, raw: str) -> Any:
        value = raw.strip().lower() if lower else raw.strip()
        if value not in values:
            raise ConfigError(f"{name}={value!r} {allowed}")
        return values[value]

    return parse


# The readings of particular settings (declared in settings.py), kept here so that module holds declarations.


def schedule(name: str, raw: str) -> str | None:
    """A DAG schedule; empty, ``none`` or ``manual`` (any case) is none: manual runs only."""
    value = raw.strip()
    return None if value.lower() in ("", "none", "manual") else value


def notifiers(name: str, raw: str) -> tuple[AlertTarget, ...]:
    """``REPORTS_ALERT_NOTIFIERS``; a bad entry is logged and left out, never raised: a typo in the alert
    setting must not stop the DAG from parsing, i.e. every load."""
    return parse_notifiers(raw, strict=False)


def snapshot_under_airflow_home(env: Mapping[str, str]) -> Path:
    """The parse-time snapshot's default path: under ``AIRFLOW_HOME`` (``~/airflow`` when unset)."""
    airflow_home = env.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(os.path.join(airflow_home, "report_pipeline", "admin_snapshot.json"))


# gzip and none are documented; the rest were always accepted, so they stay valid.
compression = choice(
    {"gzip": True, "1": True, "true": True, "on": True, "none": False, "0": False, "false": False, "off": False},
    "must be 'gzip' or 'none'",
)
server_side_encryption = choice(
    {"AES256": "AES256", "aws:kms": "aws:kms"}, "must be empty, 'AES256' or 'aws:kms'", lower=False
)
TLS_MODES = ("off", "verify")
tls_mode = choice({m: m for m in TLS_MODES}, f"must be one of {TLS_MODES}")
replica_mode = choice({m: m for m in ("auto", "off", "required")}, "must be 'auto', 'off' or 'required'")
