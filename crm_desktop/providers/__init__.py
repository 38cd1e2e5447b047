"""Async adapters that talk to Salesforce, HubSpot and Pipedrive on one shared HTTP core."""
