"""Widgets of the appliance TUI."""
