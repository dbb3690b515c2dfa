"""Host and GPU telemetry: plain readings, with unknown values kept as None ("n/a")."""
