"""The legacy connection profiles of the official libraries (spec §1.5, §3.5, §3.6, Q2-Q4)."""

from __future__ import annotations

import dataclasses
from typing import Final

from instamsg.broker.profiles import LEGACY, ConnectionProfile

# Python, JS, Telit 1.5 (credential layout A): short SUBACK (Q2).
LEGACY_A: Final = dataclasses.replace(
    LEGACY, name="legacy-a", suback_return_codes=False, implicit_delivery=True
)
# Python over raw TCP/TLS reads one packet per recv() and sleeps 10 s after CONNACK: pace pushes.
LEGACY_A_STREAM: Final = dataclasses.replace(LEGACY_A, push_delay=11.0, push_spacing=0.6)
# C, Java, Telit 2.7 (credential layout B).
LEGACY_B: Final = dataclasses.replace(LEGACY, name="legacy-b", implicit_delivery=True)


def profile_name(profile: ConnectionProfile) -> str:
    """The name the REST API shows (`legacy-a`, `legacy-b`, `standard`)."""
    return profile.name
