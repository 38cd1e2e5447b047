"""Services shared by the GUI and the CLI."""
