"""CRM Desktop: sync a marketing team's social-media data with Salesforce, HubSpot and Pipedrive."""

from __future__ import annotations

__version__ = "0.1.0"
