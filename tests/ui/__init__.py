"""Tests of the PySide6 user interface."""
