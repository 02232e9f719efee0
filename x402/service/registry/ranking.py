"""Search ranking for ``GET /discovery/search``: one SQL score, a weighted sum of five signals in [0, 1].

    score = 0.35 * text + 0.20 * quality + 0.15 * popularity + 0.10 * recency + 0.20 * verification
            + 0.10 * trust - 0.35 if the last probe found the resource down

* text: ``ts_rank_cd`` of the weighted tsvector (serviceName A, description B, tags C, URL words D) against
  ``websearch_to_tsquery('english', query)``, divided by the best rank among the matches (so the top text match
  scores 1 whatever the query length). An empty query matches everything and text is 0 for every row.
* quality: 0.6 * uptime (probes ok / total; 0.5 before the first probe) + 0.4 * rating, the rating being a
  Bayesian mean on 1..5 (3 phantom votes of 3.0, so one 5-star vote does not beat fifty 4.8s) mapped to 0..1.
* popularity: ln(1 + settled volume in atomic units) / ln(1 + 10^12), capped at 1 (10^12 = 1M USDC).
* recency: exp(-age / 30 days) of ``last_updated`` (a re-verified or re-registered resource is fresh again).
* verification: verified 1, unverified 0.3, failed 0 (failed resources are also left out of results).
* trust: the resource's trust score / 100 (docs/trust.md; 0.5 before its first computation), so a wash-traded
  resource whose volume inflates popularity loses more here than it gains there.

Field weights inside ``text`` are Postgres' defaults (A 1.0, B 0.4, C 0.2, D 0.1), so a name match outweighs a
description match by 0.21, which a verified, popular, well-rated resource can make up; an unverified newcomer
that only matches by name lands below established matches but above resources that are down.
Ties break on id so pages are stable. Weights are module constants so a deployment can tune them in one place.
"""

from __future__ import annotations

from typing import Final

W_TEXT: Final = 0.35
W_QUALITY: Final = 0.20
W_POPULARITY: Final = 0.15
W_RECENCY: Final = 0.10
W_VERIFICATION: Final = 0.20
W_TRUST: Final = 0.10
TRUST_UNKNOWN: Final = 50
DOWN_PENALTY: Final = 0.35

UPTIME_SHARE: Final = 0.6
RATING_PRIOR_VOTES: Final = 3
RATING_PRIOR_MEAN: Final = 3.0
POPULARITY_CAP: Final = 10**12
RECENCY_DAYS: Final = 30.0
UNVERIFIED_CREDIT: Final = 0.3


def score_sql(text: str, now: str) -> str:
    """The score expression over a row with a normalised text relevance ``text`` and a timestamp ``now``."""
    rating = (
        f"(((rating_sum + {RATING_PRIOR_VOTES * RATING_PRIOR_MEAN})::float8"
        f" / (rating_count + {RATING_PRIOR_VOTES})) - 1.0) / 4.0"
    )
    quality = f"({UPTIME_SHARE} * coalesce(uptime, 0.5) + {1 - UPTIME_SHARE:.2f} * {rating})"
    popularity = f"least(1.0, ln(1.0 + settled_volume::float8) / ln(1.0 + {POPULARITY_CAP}::float8))"
    recency = f"exp(-greatest(0.0, extract(epoch FROM ({now} - last_updated))::float8) / {RECENCY_DAYS * 86400})"
    verification = (
        f"(CASE verification_status WHEN 'verified' THEN 1.0 WHEN 'unverified' THEN {UNVERIFIED_CREDIT} ELSE 0.0 END)"
    )
    return (
        f"({W_TEXT} * {text} + {W_QUALITY} * {quality} + {W_POPULARITY} * {popularity}"
        f" + {W_RECENCY} * {recency} + {W_VERIFICATION} * {verification}"
        f" + {W_TRUST} * coalesce(trust, {TRUST_UNKNOWN})::float8 / 100.0"
        f" - (CASE WHEN status = 'down' THEN {DOWN_PENALTY} ELSE 0.0 END))"
    )
