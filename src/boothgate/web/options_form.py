"""Turn a provider's options model (its JSON schema) into form fields for the slot card.

Handles what pydantic emits for simple option models: strings, numbers, integers, booleans, enums
and Literals (also through `$ref`/`allOf`), and `X | None`. Anything richer is edited as JSON text.

A provider says more about a field with `json_schema_extra` (data on its Options model, not UI rules):
- `kinds`: the slot kinds the field applies to (the card hides it for other kinds);
- `advanced`: an expert field, shown under the card's "Advanced" fold;
- `options_of`: the field holds another tab's options, named by the sibling field given here
  (DeepSeek's `renderer_options` → the options of the tab in `renderer`), edited as a sub-form;
- `model_list`: the tab whose live model list suggests values (fields named `model` get their own tab's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from boothgate import i18n

LONG_STRING = 200  # strings allowed to be longer than this get a textarea
LONG_NAMES = ("prompt", "instruction", "template")


@dataclass
class OptionField:
    name: str
    label: str
    help: str
    widget: str  # select | checkbox | number | text | textarea | json
    type: str  # string | integer | number | boolean | json
    value: Any
    nullable: bool = False
    choices: list[str] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    kinds: list[str] = field(default_factory=list)  # empty: every kind
    advanced: bool = False
    model_list: str | None = None  # tab whose model list feeds a datalist
    depends_on: str | None = None  # sub-form: the sibling field that picks the part shown
    subforms: dict[str, list[OptionField]] = field(default_factory=dict)

    @property
    def step(self) -> str:
        return "1" if self.type == "integer" else "any"

    @property
    def text_value(self) -> str:
        """The value as an input shows it."""
        if self.value is None:
            return ""
        if self.type == "json":
            import json

            return json.dumps(self.value, ensure_ascii=False)
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return str(self.value)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref` and single-item `allOf` to the schema that says what the value is."""
    for _ in range(10):
        if "$ref" in node:
            target = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        elif isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
            node = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
        else:
            break
    return node


def _unwrap_optional(node: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    choices = node.get("anyOf") or node.get("oneOf")
    if not isinstance(choices, list):
        return node, False
    others = [c for c in choices if c.get("type") != "null"]
    nullable = len(others) < len(choices)
    if len(others) == 1:
        outer = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
        return {**_resolve(others[0], defs), **outer}, nullable
    return {"type": "json"}, nullable


def _bound(node: dict[str, Any], inclusive: str, exclusive: str) -> float | None:
    value = node.get(inclusive, node.get(exclusive))
    return float(value) if isinstance(value, int | float) else None


def _field(
    name: str,
    node: dict[str, Any],
    defs: dict[str, Any],
    value: Any,
    language: str,
    provider: str,
    schemas: dict[str, dict[str, Any]],
) -> OptionField:
    node, nullable = _unwrap_optional(_resolve(node, defs), defs)
    node = _resolve(node, defs)
    label = i18n.lookup(language, f"option.{provider}.{name}") or node.get("title") or name.replace("_", " ").title()
    help_text = i18n.lookup(language, f"option.{provider}.{name}.help") or node.get("description", "")
    common: dict[str, Any] = {
        "name": name,
        "label": label,
        "help": help_text,
        "value": value,
        "nullable": nullable,
        "kinds": [str(k) for k in node.get("kinds", [])],
        "advanced": bool(node.get("advanced", False)),
    }
    if node.get("options_of"):
        return _subform(node["options_of"], value, language, schemas, common)
    if "enum" in node or "const" in node:
        choices = [str(c) for c in node.get("enum", [node.get("const")])]
        return OptionField(widget="select", type=_enum_type(node), choices=choices, **common)
    kind = node.get("type")
    if kind == "boolean":
        return OptionField(widget="checkbox", type="boolean", **common)
    if kind in ("integer", "number"):
        return OptionField(
            widget="number",
            type=kind,
            minimum=_bound(node, "minimum", "exclusiveMinimum"),
            maximum=_bound(node, "maximum", "exclusiveMaximum"),
            **common,
        )
    if kind == "string":
        long_text = node.get("maxLength", 0) > LONG_STRING or any(w in name.lower() for w in LONG_NAMES)
        models = node.get("model_list") or (provider if name == "model" else None)
        return OptionField(widget="textarea" if long_text else "text", type="string", model_list=models, **common)
    return OptionField(widget="json", type="json", **common)


def _enum_type(node: dict[str, Any]) -> str:
    values = node.get("enum", [node.get("const")])
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "number"
    return "string"


def _subform(
    depends_on: str, value: Any, language: str, schemas: dict[str, dict[str, Any]], common: dict[str, Any]
) -> OptionField:
    """Another tab's options as a sub-form per choice of the sibling field (only the chosen one is sent)."""
    values = value if isinstance(value, dict) else {}
    # one level only: a sub-form's own fields are plain (no sub-forms inside sub-forms)
    parts = {tab: option_fields(schema, values, language, tab) for tab, schema in schemas.items()}
    return OptionField(widget="subform", type="json", depends_on=depends_on, subforms=parts, **common)


def option_fields(
    schema: dict[str, Any],
    values: dict[str, Any],
    language: str,
    provider: str,
    schemas: dict[str, dict[str, Any]] | None = None,
) -> list[OptionField]:
    """The form fields of an options schema, filled with the slot's values (or the defaults).

    `schemas` (every tab's options schema) lets a field edit another tab's options as a sub-form;
    without it such a field is edited as JSON text."""
    defs = schema.get("$defs", {})
    properties = schema.get("properties") or {}
    fields = []
    for name, node in properties.items():
        value = values[name] if name in values else node.get("default")
        parts: dict[str, dict[str, Any]] = {}
        if node.get("options_of") and schemas:
            chooser = _resolve(properties.get(node["options_of"], {}), defs)
            allowed = [str(c) for c in chooser.get("enum", [])] or list(schemas)
            parts = {tab: schemas[tab] for tab in allowed if tab in schemas and tab != provider}
        if node.get("options_of") and not parts:
            node = {k: v for k, v in node.items() if k != "options_of"}  # edited as JSON text
        fields.append(_field(name, node, defs, value, language, provider, parts))
    return fields
