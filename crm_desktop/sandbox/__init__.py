"""Sandbox CRMs: faithful local emulators of the Salesforce, HubSpot and Pipedrive APIs."""
