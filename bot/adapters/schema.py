"""The SQLite schema: every table, index and view, as numbered migrations.

Each migration runs once, in order, inside its own transaction, and is recorded in
``schema_migrations``; a released migration is never edited - changes are new steps.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported only when a migration is due: it loads numpy (~0.2 s)
    import sqlite_utils

TICKET_COLUMNS = {
    "id": int, "ref": str, "category": str, "language": str, "status": str, "subject": str,
    "customer_email": str, "customer_name": str, "created_at": str, "due_at": str,
    "escalate_at": str, "hard_at": str, "first_response_at": str, "closed_at": str,
    "escalation_level": int, "escalated_at": str, "verification_status": str,
    "needs_review": int, "triage_confidence": float, "language_confidence": float,
    "triage_cues": str, "bilingual": int, "assigned_to": str, "linked_ticket_id": int,
    "last_activity_at": str, "triage_model": str,
    # the completion clock (see _migration_completion)
    "completion_due_at": str, "completion_level": int, "completed_at": str,
    "decision": str, "extensions": int,
    # what kind of privacy request, and who asked (see _migration_request_kind)
    "request_kind": str, "agent_relation": str,
}


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date; each step runs once and is recorded."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                 "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    pending = [(v, step) for v, step in enumerate(MIGRATIONS, start=1) if v not in done]
    if not pending:
        return
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    for version, step in pending:
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            conn.execute("INSERT INTO schema_migrations VALUES (?, datetime('now'))",
                         (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _migration_1(db: sqlite_utils.Database) -> None:
    db["tickets"].create({**TICKET_COLUMNS}, pk="id", not_null={"created_at", "status"},
                         defaults={"escalation_level": 0, "needs_review": 0, "bilingual": 0,
                                   "verification_status": "not_required"})
    db.execute("CREATE UNIQUE INDEX idx_tickets_ref ON tickets(ref)")
    db.execute("CREATE INDEX idx_tickets_status_due ON tickets(status, due_at)")
    db.execute("CREATE INDEX idx_tickets_customer ON tickets(customer_email)")
    db["messages"].create({
        "id": int, "ticket_id": int, "direction": str, "kind": str, "message_id": str,
        "in_reply_to": str, "from_addr": str, "to_addrs": str, "subject": str,
        "body_text": str, "attachments": str, "created_at": str}, pk="id",
        foreign_keys=[("ticket_id", "tickets", "id")])
    db.execute("CREATE INDEX idx_messages_message_id ON messages(message_id)")
    db.execute("CREATE INDEX idx_messages_ticket ON messages(ticket_id)")
    db["events"].create({"id": int, "ticket_id": int, "at": str, "type": str, "detail": str},
                        pk="id")
    db.execute("CREATE INDEX idx_events_ticket ON events(ticket_id)")
    db["outbox"].create({
        "id": int, "message_id": str, "ticket_id": int, "kind": str, "recipients": str,
        "raw": bytes, "sensitive": int, "status": str, "attempts": int, "created_at": str,
        "next_attempt_at": str, "sent_at": str, "last_error": str}, pk="id")
    db.execute("CREATE INDEX idx_outbox_pending ON outbox(status, next_attempt_at)")
    db["outbox_recipients"].create({"outbox_id": int, "recipient": str, "created_at": str})
    db.execute("CREATE INDEX idx_outbox_recipients ON outbox_recipients(recipient, created_at)")
    db["processed"].create({
        "mailbox": str, "uidvalidity": int, "uid": int, "message_id": str, "outcome": str,
        "reason": str, "ticket_id": int, "processed_at": str},
        pk=("mailbox", "uidvalidity", "uid"))
    db.execute("CREATE INDEX idx_processed_message_id ON processed(message_id)")
    db["mailbox_state"].create({"mailbox": str, "uidvalidity": int, "last_uid": int,
                                "updated_at": str}, pk="mailbox")


def _migration_2_verification(db: sqlite_utils.Database) -> None:
    db["verifications"].create({
        "ticket_id": int, "code_hash": str, "expires_at": str, "attempts_left": int,
        "created_at": str, "reminded_at": str}, pk="ticket_id",
        foreign_keys=[("ticket_id", "tickets", "id")])


def _migration_job_state(db: sqlite_utils.Database) -> None:
    # Scheduled jobs record here what they did (e.g. the digest date), so a restart never
    # repeats them.
    db["job_state"].create({"key": str, "value": str, "updated_at": str}, pk="key")


# Statuses after which staff owe the customer nothing more (also the escalation default).
_OPEN_TICKET = ("t.closed_at IS NULL "
                "AND t.status NOT IN ('answered', 'closed', 'closed_unverified')")
_NOW = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"
_ADMIN_VIEWS = {
    "open_tickets": f"""
        SELECT t.ref, t.status, t.category, t.language, t.subject, t.customer_email,
               t.created_at, t.due_at, t.hard_at, t.escalation_level,
               t.verification_status, t.needs_review, t.due_at < {_NOW} AS overdue
        FROM tickets t WHERE {_OPEN_TICKET}""",
    "overdue_tickets": f"""
        SELECT t.ref, t.status, t.category, t.language, t.subject, t.customer_email,
               t.created_at, t.due_at, t.hard_at, t.escalation_level,
               round((julianday({_NOW}) - julianday(t.due_at)) * 24, 1) AS hours_overdue
        FROM tickets t WHERE {_OPEN_TICKET} AND t.due_at < {_NOW}""",
    "awaiting_verification": f"""
        SELECT t.ref, t.category, t.language, t.customer_email, t.created_at, t.due_at,
               v.expires_at AS code_expires_at, v.attempts_left
        FROM tickets t LEFT JOIN verifications v ON v.ticket_id = t.id
        WHERE {_OPEN_TICKET} AND t.verification_status = 'pending'""",
    "tickets_needing_review": f"""
        SELECT t.ref, t.category, t.language, t.triage_confidence, t.language_confidence,
               t.triage_cues, t.bilingual, t.subject, t.created_at, t.due_at
        FROM tickets t WHERE {_OPEN_TICKET} AND t.needs_review = 1""",
    "sla_compliance": f"""
        SELECT t.category, substr(t.created_at, 1, 7) AS month, count(*) AS tickets,
               sum(t.first_response_at IS NOT NULL AND t.first_response_at <= t.due_at)
                   AS answered_on_time,
               sum(t.first_response_at IS NOT NULL AND t.first_response_at > t.due_at)
                   AS answered_late,
               sum(t.first_response_at IS NULL AND {_OPEN_TICKET}) AS open,
               sum(t.first_response_at IS NULL AND NOT ({_OPEN_TICKET}))
                   AS closed_without_response
        FROM tickets t GROUP BY t.category, month""",
    "tickets_per_language": f"""
        SELECT t.language, count(*) AS tickets, sum({_OPEN_TICKET}) AS open,
               sum(t.bilingual) AS bilingual_acknowledgements
        FROM tickets t GROUP BY t.language""",
    "suppressed_mail": """
        SELECT p.reason, count(*) AS messages, min(p.processed_at) AS first_seen,
               max(p.processed_at) AS last_seen
        FROM processed p WHERE p.outcome = 'ignored' GROUP BY p.reason""",
    "ticket_conversation": """
        SELECT t.ref, m.id AS message_row, m.created_at, m.direction, m.kind, m.from_addr,
               m.to_addrs, m.subject, m.body_text, m.attachments
        FROM messages m JOIN tickets t ON t.id = m.ticket_id""",
}


def _migration_admin_views(db: sqlite_utils.Database) -> None:
    # Named views for datasette's canned queries and for people writing their own SQL;
    # redacted_at marks tickets whose personal data retention or `forget` removed.
    for name, sql in _ADMIN_VIEWS.items():
        db.execute(f"CREATE VIEW {name} AS {sql}")
    db.execute("ALTER TABLE tickets ADD COLUMN redacted_at TEXT")
    db.execute("CREATE INDEX idx_tickets_closed ON tickets(closed_at)")


def _migration_bounces(db: sqlite_utils.Database) -> None:
    # Addresses whose mail bounced: no automatic mail goes to a permanent bounce for 60 days.
    db["bounces"].create({"id": int, "address": str, "ticket_id": int,
                          "original_message_id": str, "status": str, "permanent": int,
                          "at": str}, pk="id")
    db.execute("CREATE INDEX idx_bounces_address ON bounces(address, at)")


def _migration_outbox_ticket_index(db: sqlite_utils.Database) -> None:
    # The per-ticket auto-reply cap counts a ticket's outbox rows for every message:
    # without this index that is a full scan, and ingest slows down as the outbox grows.
    db.execute("CREATE INDEX idx_outbox_ticket ON outbox(ticket_id)")


def _migration_staff_notices(db: sqlite_utils.Database) -> None:
    # One row per staff notice decided about a customer's mail: sent on its own (held = 0)
    # or held for the hourly per-sender summary (held = 1; summarized_at once it went out).
    # The sender is the ticket's customer_email: no address of its own to redact.
    db["staff_notices"].create({"id": int, "ticket_id": int, "held": int, "at": str,
                                "summarized_at": str}, pk="id")
    db.execute("CREATE INDEX idx_staff_notices_ticket ON staff_notices(ticket_id, at)")


def _migration_triage_model(db: sqlite_utils.Database) -> None:
    # Which model triaged a ticket: staff corrections are measured per model version.
    if "triage_model" not in db["tickets"].columns_dict:  # new databases have it already
        db["tickets"].add_column("triage_model", str)


def _migration_attempts(db: sqlite_utils.Database) -> None:
    # Mail whose handling started, written before it is handled: a mail that started in two
    # workers that never finished it (killed, out of memory) is quarantined on the third
    # start. `worker` is the process that started it last (its retries do not count); the
    # row is deleted when the mail gets its processed row. Holds no personal data.
    db["attempts"].create({"mailbox": str, "uidvalidity": int, "uid": int, "tries": int,
                           "worker": str, "last_started_at": str},
                          pk=("mailbox", "uidvalidity", "uid"))


COMPLETION_COLUMNS = ("completion_due_at", "completion_level", "completed_at", "decision",
                      "extensions")


def _migration_completion(db: sqlite_utils.Database) -> None:
    # The second clock of a disclosure/correction/deletion request: by when it must be
    # carried out (completion_due_at, moved by #extend, counted in `extensions`), the
    # completion reminder sent (completion_level: 1 soon, 2 overdue), and the recorded end:
    # completed_at with decision done | refused | partial | nodata. Old tickets get their
    # completion_due_at from the next completion pass (it needs the config).
    for name in COMPLETION_COLUMNS:
        if name not in db["tickets"].columns_dict:  # new databases have them already
            db["tickets"].add_column(name, TICKET_COLUMNS[name])
    db.execute("CREATE INDEX idx_tickets_status_completion "
               "ON tickets(status, completion_due_at)")
    db.execute("CREATE INDEX idx_tickets_completion_unset ON tickets(id) "
               "WHERE completion_due_at IS NULL "
               "AND category IN ('disclosure', 'correction', 'deletion')")


def _migration_request_kind(db: sqlite_utils.Database) -> None:
    # request_kind: NULL (an ordinary request), 'opt_out' (stop marketing / withdraw
    # consent to it: honoured on the address alone, no identity code) or 'incident'
    # (personal data reached the wrong person, leaked or was exposed: the DPO is told at
    # once). agent_relation: who wrote for the data subject (parent, guardian, spouse,
    # heir, representative); NULL when the customer wrote for themselves.
    # verifications.unthreaded_attempts_left: wrong codes in mail that only carries the
    # ref (not a reply to our mail) cost this budget, never the customer's tries.
    for name in ("request_kind", "agent_relation"):
        if name not in db["tickets"].columns_dict:  # new databases have them already
            db["tickets"].add_column(name, TICKET_COLUMNS[name])
    if "unthreaded_attempts_left" not in db["verifications"].columns_dict:
        db["verifications"].add_column("unthreaded_attempts_left", int)


def _migration_outbox_recipients_index(db: sqlite_utils.Database) -> None:
    # The per-ticket auto-reply cap joins a ticket's outbox rows to their recipients: without
    # this index every new mail scans all of outbox_recipients (ingest slows as it grows).
    db.execute("CREATE INDEX idx_outbox_recipients_outbox "
               "ON outbox_recipients(outbox_id, created_at)")


def _migration_auto_mail_slots(db: sqlite_utils.Database) -> None:
    # Send times of automatic mail under limits.auto_mail_per_hour, one row each. They were a
    # JSON list in job_state, read and rewritten whole for every mail (a 40 kB row per mail
    # at a cap of a few thousand); the cap-th latest is now one indexed lookup, and rows
    # older than the hour are dropped as new ones come.
    db.execute("CREATE TABLE auto_mail_slots (at TEXT NOT NULL)")
    db.execute("CREATE INDEX idx_auto_mail_slots_at ON auto_mail_slots(at)")
    row = db.execute("SELECT value FROM job_state WHERE key = 'auto_mail_slots'").fetchone()
    if row and row[0]:
        db.conn.executemany("INSERT INTO auto_mail_slots (at) VALUES (?)",
                            [(at,) for at in json.loads(row[0])])
    db.execute("DELETE FROM job_state WHERE key = 'auto_mail_slots'")


MIGRATIONS = [_migration_1, _migration_2_verification, _migration_job_state,
              _migration_admin_views, _migration_bounces, _migration_outbox_ticket_index,
              _migration_staff_notices, _migration_triage_model, _migration_attempts,
              _migration_completion, _migration_request_kind,
              _migration_outbox_recipients_index, _migration_auto_mail_slots]
