"""Leads and referrals: the conversion funnel per agent and channel, who referred whom
(DOMAIN §6). See docs/insurance.md."""

from __future__ import annotations
