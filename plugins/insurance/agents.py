"""Agents, brokers and partner channels: profiles, licences, the team hierarchy, licence
expiry notices (DOMAIN §2, §6). See docs/insurance.md."""

from __future__ import annotations
