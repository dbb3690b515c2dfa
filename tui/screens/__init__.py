"""Screens of the appliance TUI: dashboard, models, events, chat, and the modals."""
