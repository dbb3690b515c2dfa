"""How long a client turned away by a full queue is told to wait (Retry-After)."""

from __future__ import annotations

from appliance.engines.supervisor import retry_after_s


def test_retry_after_is_about_until_a_running_request_ends() -> None:
    assert retry_after_s(None, 4) == 1  # nothing finished yet: soon
    assert retry_after_s(0.3, 1) == 1  # never less than a second
    assert retry_after_s(12.0, 4) == 3  # four slots: one of them ends in about 12 / 4 s
    assert retry_after_s(9.5, 1) == 10
    # The openai SDK honours Retry-After up to 60 s: never more.
    assert retry_after_s(600.0, 2) == 60
