"""Real-time companion daemon for the AppointEase WordPress booking plugin."""

__version__ = "0.2.0"
