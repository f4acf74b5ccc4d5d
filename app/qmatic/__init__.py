"""Qmatic Orchestra: its public events mapped onto ticket and desk events, and the relay receiving them."""
