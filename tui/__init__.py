"""The appliance's terminal UI: a Textual client of the daemon's HTTP API.

Start it with `appliance tui`, or `tui.app.make_app(base_url, api_key).run()`. It
talks to the daemon only over HTTP and never imports the daemon's engine, tier,
API or store code (tests/tui/test_import_contracts.py holds it to that).
"""
