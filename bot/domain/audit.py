"""Audit log entries: the actor's form and the row's shape in one place.

An entry's actor is "staff:<id>", "customer:<id>" or "system" (bot/storage/models.AuditLog);
staff_access.py reads back what a staff member took part in by that form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.storage.models import AuditLog


def staff_actor(user_id: int) -> str:
    return f"staff:{user_id}"


def customer_actor(customer_id: int) -> str:
    return f"customer:{customer_id}"


def entry(
    actor: str,
    action: str,
    target_type: str,
    target_id: int | str,
    details: Mapping[str, Any] | None = None,
) -> AuditLog:
    return AuditLog(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        details=dict(details or {}),
    )


def by_staff(
    user_id: int,
    action: str,
    target_type: str,
    target_id: int | str,
    details: Mapping[str, Any] | None = None,
) -> AuditLog:
    return entry(staff_actor(user_id), action, target_type, target_id, details)


def by_customer_in_chat(
    customer_id: int,
    action: str,
    target_type: str,
    target_id: int | str,
    details: Mapping[str, Any] | None = None,
) -> AuditLog:
    """A change the customer confirmed in the chat (details carry "via": "chat")."""
    return entry(
        customer_actor(customer_id),
        action,
        target_type,
        target_id,
        {"via": "chat", **(details or {})},
    )


def staff_user_entry(
    user_id: int, action: str, details: Mapping[str, Any] | None = None
) -> AuditLog:
    """What a staff member did to their own account (sign-in, sessions, two-factor)."""
    return by_staff(user_id, action, "staff_user", user_id, details)
