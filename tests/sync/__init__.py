"""Scenario tests of the sync engine against the in-process CRM sandboxes."""
