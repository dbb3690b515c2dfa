"""appliance: a self-hosted, single-box inference appliance."""

__version__ = "0.1.0"
