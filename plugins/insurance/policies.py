"""Products and policies on the workflow engine, orders from issued premiums, renewals and their
notices (DOMAIN §6). See docs/insurance.md."""

from __future__ import annotations
