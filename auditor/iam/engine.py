"""The policy engine: one a command's context (auditor.app.context), reached through auditor.policy.

It owns what its questions share: their answers by content (comparisons and decisions, for the class
of labs and as each lab asked them; parsed documents; the cells of patterns), its places on the
CPUs (auditor.iam.budget) and its time limit, the configuration's [audit] policy_time_limit. None of
it is module-level: two engines share no answer, and what a long-lived engine (the daemon's) knows
goes with its context.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from auditor.iam.automata import Found
from auditor.iam.budget import Allowance, Places
from auditor.iam.comparing import Comparer, Comparison
from auditor.iam.deciding import Decider, Hop, Policies, Verdict
from auditor.iam.document import Policy, Statement, content_key, parse_policy
from auditor.iam.memo import Memo
from auditor.iam.question import Asking
from auditor.iam.ranking import NOWHERE, Setting

CLASS_ANSWERS = 4096  # questions of a class of labs (their account ids as placeholders)
LAB_ANSWERS = 32768  # the same questions as each lab asks them: a few a lab, a thousand labs
DOCUMENTS = 8192  # parsed documents, by content
CELLS = 4096  # the cells of the patterns a question tests one string with


class PolicyEngine:
    """Compares and decides by IAM's meaning, each question within `time_limit` seconds (counted in
    z3's work, auditor.iam.budget), each answer kept by content for the engine's life."""

    def __init__(self, time_limit: float) -> None:
        found: Found = Memo(CELLS)
        self._asking = Asking(time_limit, Places(), found)
        self._comparer = Comparer(CLASS_ANSWERS, LAB_ANSWERS)
        self._decider = Decider(CLASS_ANSWERS, LAB_ANSWERS)
        self._documents: Memo[str | bytes, Policy] = Memo(DOCUMENTS)

    @property
    def time_limit(self) -> float:
        """Seconds for one comparison or one decision, both directions together."""
        return self._asking.time_limit

    def for_one_lab(self, share: float | None = None) -> PolicyEngine:
        """This engine for one lab's judgement: its answers and places, and one share of its time limit
        (or of `share` seconds) that all the lab's questions spend together, so that a hostile
        document stalls its lab by that much at most, not by the limit of every question."""
        lab = copy.copy(self)
        seconds = self.time_limit if share is None else share
        lab._asking = replace(self._asking, share=Allowance.of(seconds))
        return lab

    def parse(self, document: str | bytes | Mapping[str, Any]) -> Policy:
        """auditor.iam.document's `parse_policy`, once a content: every audit reads the same few
        documents of every lab again. Raises PolicyError for a malformed document."""
        key = content_key(document)
        if key is None:
            return parse_policy(document)
        return self._documents.computed(key, lambda: (parse_policy(document), True))

    def compare(
        self,
        expected: Sequence[Statement],
        actual: Sequence[Statement],
        *,
        trust: bool,
        setting: Setting = NOWHERE,
    ) -> Comparison:
        """auditor.iam.comparing's comparison of the two sides, with witnesses named after `setting`."""
        return self._comparer.compare(expected, actual, trust=trust, asking=self._asking, setting=setting)

    def decide(self, hop: Hop, policies: Policies) -> Verdict:
        """auditor.iam.deciding's verdict on one request of the lab's access path."""
        return self._decider.decide(hop, policies, self._asking)
