"""Cijidas inquiry bot: first responder on the privacy-inquiry mailbox."""

__version__ = "0.1.0"
