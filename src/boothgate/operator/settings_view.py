"""The settings page's view of `RuntimeConfig`: what each editable setting is, where its value comes
from, and validation of changes before they are stored.

Secrets never leave this module: a secret is described as set or not set plus a mask that shows at
most its last four characters (fewer for short values, none for very short ones).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import SecretStr, TypeAdapter, ValidationError

from boothgate.settings import RUNTIME_EDITABLE, Settings, env_name
from boothgate.storage.config import RuntimeConfig, SettingLockedError

MASK = "••••"
GROUPS: tuple[str, ...] = ("general", "gemini", "turbotext", "deepseek", "local", "openai", "fal")
LONG_TEXT_HINTS = ("template", "system_prompt", "_models", "fal_inputs")  # long texts: a resizable text area
# Fields an operator rarely touches (addresses of the services, prices, prompt templates, timings): folded
# under "Expert settings" in their tab's section so the page shows keys and models first.
EXPERT_HINTS = (
    "base_url",
    "queue_url",
    "price",
    "template",
    "system_prompt",
    "image_sizes",
    "_models",
    "poll_interval",
    "stage_seconds",
    "fal_inputs",
    "provider_input_pixels",
    "rehearsal_concurrency",
)


def is_expert(name: str) -> bool:
    return name != "public_base_url" and any(hint in name for hint in EXPERT_HINTS)


class SettingsInvalid(ValueError):
    """One or more changes are invalid: `errors` maps each field to a plain message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class SettingsLocked(SettingLockedError):
    """A change names a setting that the environment sets (the environment always wins)."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(", ".join(fields))
        self.fields = fields


def mask(secret: str) -> str:
    """ "••••1234": the last four characters at most, and fewer when the value is short."""
    if len(secret) >= 16:
        shown = 4
    elif len(secret) >= 10:
        shown = 2
    else:
        shown = 0
    return MASK + (secret[-shown:] if shown else "")


def is_secret(name: str) -> bool:
    annotation = Settings.model_fields[name].annotation
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def group_of(name: str) -> str:
    prefix = name.split("_", 1)[0]
    return prefix if prefix in GROUPS else "general"


def _input_of(name: str) -> tuple[str, list[str]]:
    """How the page edits a setting: (input kind, choices)."""
    annotation = Settings.model_fields[name].annotation
    if is_secret(name):
        return "secret", []
    if typing.get_origin(annotation) is Literal:
        return "choice", [str(a) for a in typing.get_args(annotation)]
    if annotation is bool:
        return "boolean", []
    if annotation is int:
        return "integer", []
    if annotation is float:
        return "number", []
    return ("text" if any(hint in name for hint in LONG_TEXT_HINTS) else "string"), []


def _limits(name: str) -> dict[str, float]:
    """Numeric bounds from the field's constraints (for the input's min/max)."""
    limits: dict[str, float] = {}
    for item in Settings.model_fields[name].metadata:
        for attr, key in (("ge", "min"), ("gt", "min_exclusive"), ("le", "max"), ("lt", "max_exclusive")):
            value = getattr(item, attr, None)
            if value is not None:
                limits[key] = float(value)
    return limits


@dataclass(frozen=True)
class SettingView:
    name: str
    env: str
    group: str
    input: str
    choices: list[str]
    limits: dict[str, float]
    description: str
    source: str
    secret: bool
    value: Any  # None for secrets
    is_set: bool
    masked: str | None
    default: Any

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "env": self.env,
            "group": self.group,
            "input": self.input,
            "choices": self.choices,
            "limits": self.limits,
            "description": self.description,
            "source": self.source,
            "editable": self.source != "environment",
            "secret": self.secret,
            "value": self.value,
            "set": self.is_set,
            "masked": self.masked,
            "default": self.default,
            "expert": is_expert(self.name),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def describe(config: RuntimeConfig) -> list[SettingView]:
    """Every runtime-editable setting with its effective value (secrets masked) and its source."""
    settings = config.settings
    views = []
    for name in RUNTIME_EDITABLE:
        field = Settings.model_fields[name]
        kind, choices = _input_of(name)
        secret = is_secret(name)
        current = getattr(settings, name)
        plain = current.get_secret_value() if isinstance(current, SecretStr) else None
        views.append(
            SettingView(
                name=name,
                env=env_name(name),
                group=group_of(name),
                input=kind,
                choices=choices,
                limits=_limits(name),
                description=field.description or "",
                source=config.source(name),
                secret=secret,
                value=None if secret else _jsonable(current),
                is_set=bool(plain) if secret else current not in (None, ""),
                masked=mask(plain) if plain else None,
                default=None if secret else _jsonable(field.default),
            )
        )
    return views


def _adapter(name: str) -> TypeAdapter[Any]:
    field = Settings.model_fields[name]
    annotation: Any = field.annotation
    if field.metadata:
        annotation = Annotated[(annotation, *field.metadata)]  # type: ignore[valid-type]
    return TypeAdapter(annotation)


def _check_url(name: str, value: Any) -> str | None:
    if not name.endswith(("base_url", "queue_url")) or not isinstance(value, str):
        return None
    if value == "" and name == "public_base_url":
        return None
    if not value.startswith(("http://", "https://")) or len(value) < len("http://x"):
        return "must be an address starting with http:// or https://"
    if any(c.isspace() for c in value):
        return "must not contain spaces"
    return None


def _check_empty(name: str, value: Any) -> str | None:
    # An empty model or URL is never meant; resetting to the default is `null`.
    if isinstance(value, str) and not value.strip() and name != "public_base_url":
        return "must not be empty (reset it to the default instead)"
    return None


def validate_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Check each change on its own and return the typed values to store.

    None resets a setting to its default; for a secret, None or "" leaves it as it is.
    """
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in RUNTIME_EDITABLE:
            errors[name] = "is not a setting that can be changed here"
            continue
        if value is None or (is_secret(name) and value == ""):
            clean[name] = None
            continue
        if is_secret(name):
            if not isinstance(value, str) or value != value.strip() or any(c.isspace() for c in value):
                errors[name] = "must be a single word without spaces"
            else:
                clean[name] = value
            continue
        try:
            typed = _adapter(name).validate_python(value)
        except ValidationError as exc:
            errors[name] = exc.errors()[0]["msg"]
            continue
        problem = _check_url(name, typed) or _check_empty(name, typed)
        if problem:
            errors[name] = problem
            continue
        clean[name] = typed.rstrip("/") if name.endswith(("base_url", "queue_url")) else typed
    if errors:
        raise SettingsInvalid(errors)
    return clean


async def apply(config: RuntimeConfig, changes: dict[str, Any]) -> None:
    """Validate and store changes. Raises SettingsLocked (environment wins) or SettingsInvalid."""
    locked = [name for name in changes if name in RUNTIME_EDITABLE and config.source(name) == "environment"]
    if locked:
        raise SettingsLocked(locked)
    clean = validate_changes(changes)
    try:
        await config.update(clean)
    except ValidationError as exc:
        raise SettingsInvalid({str(e["loc"][0]) if e["loc"] else "settings": e["msg"] for e in exc.errors()}) from exc
