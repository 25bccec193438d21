"""An escalation's episodes: each wait for a surgeon, from a flag to its answers.

An escalation's first episode starts when it opens. A further sign (a flagged check, a missed
check) that comes after the episode was answered starts the next one: the surgeon who answered
has not seen it. A sign before any answer joins the episode it came in. Within an episode:

- **acknowledged**: its first answer, whichever: "I'm coming" or the decision;
- **attending**: the first "I'm coming";
- **decision**: the first acknowledgement with an outcome;
- **highest level**: the highest level of the escalation chain paged during it (0: none, as
  for an escalation that opened before the unit had a chain). A step counts whether or not
  its contact could be reached: it is on the timeline either way.

Closing the escalation ends its last episode. Values in, values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from flapwatch.domain.vocabulary import EscalationEventKind

SIGNS = (EscalationEventKind.FLAG_ADDED, EscalationEventKind.OVERDUE)


@dataclass
class Episode:
    escalation_id: int
    number: int  # 1: the opening
    flagged_at: datetime
    acknowledged_at: datetime | None = None
    attending_at: datetime | None = None
    decided_at: datetime | None = None
    highest_level: int = 0
    # Until the next episode started or the escalation closed; None: still going.
    ended_at: datetime | None = field(default=None, repr=False)

    def minutes_to(self, moment: datetime | None) -> float | None:
        if moment is None:
            return None
        return round((moment - self.flagged_at).total_seconds() / 60, 1)

    @property
    def answered(self) -> bool:
        return self.acknowledged_at is not None


def episodes_of(
    escalation_id: int,
    events: Iterable[tuple[EscalationEventKind | str, datetime]],
    pages: Iterable[tuple[datetime, int]] = (),
) -> list[Episode]:
    """The episodes of one escalation from its timeline (kind, at) in order, and the chain's
    pages (sent at, level)."""
    found: list[Episode] = []
    current: Episode | None = None
    for kind, at in events:
        kind = EscalationEventKind(kind)
        if kind == EscalationEventKind.OPENED and current is None:
            current = Episode(escalation_id, 1, at)
            found.append(current)
        elif current is None or current.ended_at is not None:
            continue  # nothing before the opening, nothing after the closing
        elif kind in SIGNS and current.answered:
            current.ended_at = at
            current = Episode(escalation_id, current.number + 1, at)
            found.append(current)
        elif kind == EscalationEventKind.ATTENDING:
            current.attending_at = current.attending_at or at
            current.acknowledged_at = current.acknowledged_at or at
        elif kind == EscalationEventKind.ACKNOWLEDGED:
            current.decided_at = current.decided_at or at
            current.acknowledged_at = current.acknowledged_at or at
        elif kind == EscalationEventKind.CLOSED:
            current.ended_at = at
    for sent_at, level in pages:
        for episode in found:
            if episode.flagged_at <= sent_at and (
                episode.ended_at is None or sent_at < episode.ended_at
            ):
                episode.highest_level = max(episode.highest_level, level)
                break
    return found


def levels_reached(episodes: Sequence[Episode]) -> dict[int, int]:
    """How many episodes reached each highest level, from 0 to the highest seen."""
    top = max((episode.highest_level for episode in episodes), default=0)
    counts = dict.fromkeys(range(top + 1), 0)
    for episode in episodes:
        counts[episode.highest_level] += 1
    return counts
