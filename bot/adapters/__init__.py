"""The edges: SQLite store (the only module that writes SQL), IMAP, SMTP, the outbox sender."""
