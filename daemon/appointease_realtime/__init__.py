"""Real-time companion daemon for the AppointEase WordPress booking plugin."""
