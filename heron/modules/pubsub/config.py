"""Node configuration (XEP-0060 §8.2, §16.4.4) and publish-options (§7.1.5) as data forms.

One field table serves the configuration form, its submission, the creation form and the
publish-options preconditions, so they cannot disagree. Values are checked here, without
I/O: a bad value is ``not-acceptable`` naming the field; a publish-options field that does
not match the node is ``conflict`` with ``precondition-not-met``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Final

from heron import ns
from heron.modules.pubsub.errors import pubsub_error
from heron.stanza import StanzaCondition, StanzaError
from heron.stanza.forms import add_field, data_form, submitted_values
from heron.xmlstream.element import Element

ACCESS_MODELS: Final = ("open", "presence", "roster", "whitelist", "authorize")
PUBLISH_MODELS: Final = ("publishers", "subscribers", "open")
SEND_LAST: Final = ("never", "on_sub", "on_sub_and_presence")
NOTIFICATION_TYPES: Final = ("headline", "normal")
NODE_TYPES: Final = ("leaf", "collection")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """What Heron honours of pubsub#node_config. ``max_items`` None is "max": the service's
    limit (XEP-0060 §16.4.4 allows the literal "max")."""

    title: str = ""
    description: str = ""
    max_items: int | None = 1
    persist_items: bool = True
    access_model: str = "open"
    roster_groups_allowed: tuple[str, ...] = ()
    publish_model: str = "publishers"
    notify_config: bool = False
    notify_delete: bool = False
    notify_retract: bool = False
    notify_sub: bool = False
    send_last_published_item: str = "on_sub_and_presence"
    deliver_payloads: bool = True
    deliver_notifications: bool = True
    notification_type: str = "headline"
    node_type: str = "leaf"  # a collection holds nodes, never items (XEP-0060 §9)
    collection: str = ""  # the collection this node belongs to (one: no multi-collections)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> NodeConfig:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "roster_groups_allowed" in values:
            values["roster_groups_allowed"] = tuple(values["roster_groups_allowed"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Field:
    var: str
    type: str
    attr: str
    label: str
    options: tuple[str, ...] = ()


FIELDS: Final = (
    Field("pubsub#title", "text-single", "title", "A friendly name for the node"),
    Field("pubsub#description", "text-single", "description", "A description of the node"),
    Field("pubsub#max_items", "text-single", "max_items", "Max # of items to persist"),
    Field("pubsub#persist_items", "boolean", "persist_items", "Persist items to storage"),
    Field("pubsub#access_model", "list-single", "access_model", "Access model", ACCESS_MODELS),
    Field(
        "pubsub#roster_groups_allowed",
        "list-multi",
        "roster_groups_allowed",
        "Roster groups allowed to subscribe",
    ),
    Field(
        "pubsub#publish_model", "list-single", "publish_model", "Publisher model", PUBLISH_MODELS
    ),
    Field("pubsub#notify_config", "boolean", "notify_config", "Notify on configuration changes"),
    Field("pubsub#notify_delete", "boolean", "notify_delete", "Notify when the node is deleted"),
    Field("pubsub#notify_retract", "boolean", "notify_retract", "Notify when items are removed"),
    Field("pubsub#notify_sub", "boolean", "notify_sub", "Notify owners about new subscribers"),
    Field(
        "pubsub#send_last_published_item",
        "list-single",
        "send_last_published_item",
        "When to send the last published item",
        SEND_LAST,
    ),
    Field("pubsub#deliver_payloads", "boolean", "deliver_payloads", "Deliver payloads"),
    Field(
        "pubsub#deliver_notifications", "boolean", "deliver_notifications", "Deliver notifications"
    ),
    Field(
        "pubsub#notification_type",
        "list-single",
        "notification_type",
        "Message type of notifications",
        NOTIFICATION_TYPES,
    ),
    Field("pubsub#node_type", "list-single", "node_type", "Leaf or collection", NODE_TYPES),
    Field("pubsub#collection", "text-single", "collection", "The collection it belongs to"),
)
BY_VAR: Final = {f.var: f for f in FIELDS}
# Fields Heron shows with a fixed value and accepts only with that value.
FIXED: Final = {"pubsub#presence_based_delivery": "0"}


def parse_bool(text: str, var: str) -> bool:
    if text in ("1", "true"):
        return True
    if text in ("0", "false"):
        return False
    raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, f"{var}: expected a boolean")


def _render(config: NodeConfig, field: Field) -> list[str]:
    value = getattr(config, field.attr)
    if field.attr == "max_items":
        return ["max" if value is None else str(value)]
    if isinstance(value, bool):
        return ["1" if value else "0"]
    if isinstance(value, tuple):
        return list(value)
    return [str(value)]


def config_form(config: NodeConfig, node: str, form_type: str = ns.PUBSUB_NODE_CONFIG) -> Element:
    """The form of a node's configuration (§8.2.1), with its current values."""
    form = data_form("form", form_type)
    for f in FIELDS:
        add_field(form, f.var, _render(config, f), type_=f.type, label=f.label, options=f.options)
    for var, value in FIXED.items():
        add_field(form, var, [value], type_="fixed")
    return form


def _parse_value(field: Field, values: list[str], max_items_limit: int) -> object:
    text = values[0] if values else ""
    var = field.var
    if field.type == "boolean":
        return parse_bool(text, var)
    if field.attr == "max_items":
        if text == "max":
            return None
        if not text.isdigit() or not 1 <= int(text) <= max_items_limit:
            raise StanzaError(
                StanzaCondition.NOT_ACCEPTABLE,
                f"{var}: a number from 1 to {max_items_limit}, or max",
            )
        return int(text)
    if field.type == "list-multi":
        return tuple(dict.fromkeys(v for v in values if v))
    if field.options and text not in field.options:
        raise StanzaError(
            StanzaCondition.NOT_ACCEPTABLE, f"{var}: one of {', '.join(field.options)}"
        )
    if len(text) > 1024:
        raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, f"{var}: at most 1024 characters")
    return text


def apply_form(config: NodeConfig, form: Element, max_items_limit: int) -> NodeConfig:
    """The configuration a submitted node_config form asks for (§8.2.4). Fields Heron does
    not know are ignored (the form it hands out lists those it honours); a fixed field with
    another value is not-acceptable."""
    changes: dict[str, object] = {}
    for var, values in submitted_values(form).items():
        field = BY_VAR.get(var)
        if field is None:
            _check_fixed(var, values)
            continue
        changes[field.attr] = _parse_value(field, values, max_items_limit)
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]  # checked above


def _check_fixed(var: str, values: list[str]) -> None:
    fixed = FIXED.get(var)
    if fixed is not None and (values[:1] or [fixed])[0] not in (fixed, "false"):
        raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, f"{var}: only {fixed} is supported here")


def preconditions(form: Element, max_items_limit: int) -> dict[str, object]:
    """Publish-options (§7.1.5) as attribute → wanted value; unknown fields are refused
    with precondition-not-met, since Heron cannot promise what it does not know."""
    wanted: dict[str, object] = {}
    for var, values in submitted_values(form).items():
        field = BY_VAR.get(var)
        if field is None:
            raise StanzaError(
                StanzaCondition.CONFLICT,
                f"publish-option {var} is not supported",
                extra=pubsub_error("precondition-not-met"),
            )
        wanted[field.attr] = _parse_value(field, values, max_items_limit)
    return wanted


def check_preconditions(config: NodeConfig, wanted: dict[str, object]) -> None:
    for attr, value in wanted.items():
        current = getattr(config, attr)
        if current != value:
            var = next(f.var for f in FIELDS if f.attr == attr)
            raise StanzaError(
                StanzaCondition.CONFLICT,
                f"{var} of the node is not what the publish-options ask",
                extra=pubsub_error("precondition-not-met"),
            )


def with_options(config: NodeConfig, wanted: dict[str, object]) -> NodeConfig:
    return dataclasses.replace(config, **wanted)  # type: ignore[arg-type]  # parsed values
