"""The secret config keys, each with its rule, and `check_secret`, which applies them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator, Field, StrictStr, TypeAdapter, ValidationError

from components.fields import (
    CONFIG_NAMESPACE,
    SET_SECRET,
    SSH_PRIVATE_KEY_KEY,
    STATS_PASSWORD_KEY,
    VRRP_PASSWORD_KEY,
    ConfigError,
    Problem,
    StrictModel,
    fail,
    format_validation_error,
)
from components.keys import PrivateKey


def _vrrp_password(value: str) -> str:
    if not 1 <= len(value) <= 8 or not re.fullmatch(r"[\x21-\x7e]+", value) or re.search(r"[\"\\]", value):
        raise Problem(
            "VRRP PASS authentication uses 1 to 8 printable ASCII characters without spaces, '\"' or '\\' "
            "(keepalived truncates longer ones)",
            "set a password of 1 to 8 such characters",
        )
    if "${" in value:
        raise Problem(
            "keepalived replaces '${NAME}' in its config with a parameter's value, quoted or not, and has "
            "built-in ones (${_PWD}, ${_RANDOM}, ${_HASH}, ...), so the password would not reach it as written",
            "set a password without '${'",
        )
    return value


def _stats_password(value: str) -> str:
    if not 8 <= len(value) <= 128 or not re.fullmatch(r"[\x21-\x7e]+", value):
        raise Problem(
            "the stats password needs 8 to 128 printable ASCII characters without spaces",
            "set a longer password of such characters",
        )
    return value


class Secrets(StrictModel):
    """The secret config keys, each with its rule: the one table `check_secret` reads."""

    ssh_private_key: PrivateKey = Field(alias=SSH_PRIVATE_KEY_KEY)
    vrrp_password: Annotated[StrictStr, AfterValidator(_vrrp_password)] = Field(alias=VRRP_PASSWORD_KEY)
    stats_password: Annotated[StrictStr, AfterValidator(_stats_password)] = Field(alias=STATS_PASSWORD_KEY)


SECRET_KEYS = tuple(field.alias for field in Secrets.model_fields.values())
_SECRET_RULES = {f.alias: TypeAdapter(Annotated[f.annotation, *f.metadata]) for f in Secrets.model_fields.values()}


def check_secret(key: str, value: str | None) -> str:
    """Refuse a missing or unusable secret (called on the plain value inside the program), or return it
    in the form its consumers load (see keys.py for the SSH key).

    The rule is the one declared for `key` on `Secrets`; messages never repeat the secret's value.
    """
    if not value or not value.strip():
        fail(key, "secret is not set", f"run `{SET_SECRET[key]}`")
    try:
        return _SECRET_RULES[key].validate_python(value)
    except ValidationError as err:
        raise ConfigError(format_validation_error(key, err, secret=True)) from None


def check_held_as_secrets(secret: Mapping[str, bool], keys: tuple[str, ...] = SECRET_KEYS) -> None:
    """Refuse a secret set as a plain value: it would sit in plain text in Pulumi.<stack>.yaml and in the
    state. `secret` maps each key set under the namespace to whether the stack holds it as a secret;
    `keys` are the secret keys to look at (the TLS ones are declared in tls.py)."""
    plain = [key for key in keys if key in secret and not secret[key]]
    if plain:
        raise ConfigError(
            "\n".join(
                f"{CONFIG_NAMESPACE}:{key}: set as a plain value, so it is in plain text in the stack's config "
                f"file and state. Fix: run `{SET_SECRET[key]}`; the plain value stays in the file's history, "
                "so treat it as leaked"
                for key in plain
            )
        )
