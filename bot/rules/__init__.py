"""Pure decisions: SLA and calendar, ticket statuses, routing, escalation planning."""
