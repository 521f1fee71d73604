"""The default HELP, STOP and START replies, built from the brand or account (customizable per number)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Program:
    name: str  # the brand or program name
    support: str | None = None  # support contact: e-mail, phone or URL
    frequency: str = "Msg frequency varies"


def default_help(p: Program) -> str:
    support = f" Help: {p.support}." if p.support else ""
    return f"{p.name}:{support} {p.frequency}. Msg&data rates may apply. Reply STOP to cancel."


def default_stop(p: Program) -> str:
    return f"{p.name}: You are unsubscribed and will receive no more messages. Reply START to resubscribe."


def default_opt_in(p: Program) -> str:
    return (f"{p.name}: You are subscribed again. {p.frequency}. Msg&data rates may apply. "
            "Reply HELP for help, STOP to cancel.")
