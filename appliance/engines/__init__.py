"""Engines: worker processes that run models, their supervision and chat templating."""
