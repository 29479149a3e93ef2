"""Real-time behaviour: the events API (identify/track/page/screen), sessions, identity from events."""
from .service import EventLimits, accept_events
from .sessions import sessionize

__all__ = ["accept_events", "EventLimits", "sessionize"]
