"""Entry points: command line, worker loop and scheduler, checks, demo, admin view."""
