"""The local HTTP API: FastAPI routes on the app's services, served on loopback by the GUI or ``crm-desktop serve``."""
