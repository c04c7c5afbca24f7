"""Pure mail handling: raw bytes to structured mail, outgoing mail composed and rendered."""
