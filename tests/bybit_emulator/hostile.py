"""'Hostile frames': documented-but-unusual values in private pushes.

Each mutation takes ``(topic, item)`` and returns the item to send. Bybit documents these
values (nulls where a field is unset, ``UNKNOWN`` enum members, fields added over time), but
the emulator sends one safe spelling by default; a client that cannot parse a frame must not
lose a fill silently.
"""

from __future__ import annotations

from collections.abc import Callable

Mutation = Callable[[str, dict], dict]

TRIGGER_FIELDS = ("triggerBy", "tpTriggerBy", "slTriggerBy")
NULLABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "order": ("orderIv", "placeType", "feeCurrency", "blockTradeId", "smpOrderId"),
    "execution": ("tradeIv", "markIv", "indexPrice", "underlyingPrice", "blockTradeId"),
    "position": ("liqPrice", "bustPrice", "sessionAvgPrice", "mmrSysUpdatedTime"),
    "wallet": ("availableToBorrow", "availableToWithdraw", "accountLTV"),
}


def _extra_fields(topic: str, item: dict) -> dict:
    """Fields this client has never heard of (Bybit adds fields without notice)."""
    return {**item, "emuNewField": "1", "emuNewObject": {"nested": [1, None], "flag": True}}


def _unknown_trigger_by(topic: str, item: dict) -> dict:
    """``triggerBy: "UNKNOWN"`` (and tp/sl) on orders, as Bybit sends for plain orders."""
    if topic != "order":
        return item
    return {**item, **dict.fromkeys(TRIGGER_FIELDS, "UNKNOWN")}


def _unknown_stop_order_type(topic: str, item: dict) -> dict:
    """``stopOrderType: "UNKNOWN"`` on orders and executions."""
    if topic not in ("order", "execution"):
        return item
    return {**item, "stopOrderType": "UNKNOWN"}


def _unknown_create_type(topic: str, item: dict) -> dict:
    """``createType: "UNKNOWN"`` on orders and executions."""
    if topic not in ("order", "execution"):
        return item
    return {**item, "createType": "UNKNOWN"}


def _nulls(topic_name: str) -> Mutation:
    """null instead of "" in ``topic_name`` items' fields that are unset for a perpetual."""

    def mutation(topic: str, item: dict) -> dict:
        if topic != topic_name:
            return item
        names = [n for n in NULLABLE_FIELDS[topic] if n in item]
        out = {**item, **dict.fromkeys(names, None)}
        if topic == "wallet":
            out["coin"] = [{**c, "availableToBorrow": None} for c in item.get("coin", [])]
        return out

    mutation.__doc__ = f"null in unset fields of {topic_name} pushes"
    return mutation


def _null_avg_price(topic: str, item: dict) -> dict:
    """``avgPrice: null`` on orders not filled yet (Bybit: "" or "0" elsewhere)."""
    if topic == "order" and item.get("cumExecQty") in ("0", "0.000", "0.00"):
        return {**item, "avgPrice": None}
    return item


HOSTILE_MUTATIONS: dict[str, Mutation] = {
    "extra_fields": _extra_fields,
    "unknown_trigger_by": _unknown_trigger_by,
    "unknown_stop_order_type": _unknown_stop_order_type,
    "unknown_create_type": _unknown_create_type,
    "null_order_fields": _nulls("order"),
    "null_execution_fields": _nulls("execution"),
    "null_position_fields": _nulls("position"),
    "null_wallet_fields": _nulls("wallet"),
    "null_avg_price": _null_avg_price,
}


def mutate(names: tuple[str, ...], topic: str, item: dict) -> dict:
    """``item`` after every mutation in ``names`` (in order)."""
    for name in names:
        item = HOSTILE_MUTATIONS[name](topic, item)
    return item
