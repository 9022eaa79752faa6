"""The machine under the measurement: CPU budget and threads, profile, practical peak, drift control, foreign load."""
