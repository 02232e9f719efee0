-- Trust scores (docs/trust.md): one row per subject (kind resource | address | wallet), recomputed by the trust
-- job from a watermark over the records it reads. Global: scores are computed from every tenant's records and
-- carry aggregates only (lifecycle.GLOBAL_TABLES).
CREATE TABLE trust_scores (
    kind         text        NOT NULL CHECK (kind IN ('resource', 'address', 'wallet')),
    subject      text        NOT NULL,
    score        smallint    NOT NULL CHECK (score BETWEEN 0 AND 100),
    factors      jsonb       NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, subject)
);

-- How far the trust job has read (one row): records changed after it are recomputed on the next pass.
CREATE TABLE trust_watermark (
    id       boolean     PRIMARY KEY DEFAULT true CHECK (id),
    seen_at  timestamptz NOT NULL
);
