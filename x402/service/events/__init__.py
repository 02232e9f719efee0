"""Provider events: the envelope, the transactional outbox they are written to, and (later) their delivery."""
