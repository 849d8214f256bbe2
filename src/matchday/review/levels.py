"""The five degrees of automation (IDC's scale): who decides, and what each prediction's answer says.

| level | the answer | what is queued for a person |
| --- | --- | --- |
| ``human_led`` | pending | every row, blind (the model's answer hidden unless the reviewer asks) |
| ``human_led_machine_supported`` | pending | every row, with the model's answer and confidence |
| ``machine_led_human_supported`` | final | an audit sample (default 5 %) |
| ``machine_led_human_governed`` | pending where the review rule matches, else final | the rule's rows, and an audit sample of the rest (default 1 %) |
| ``machine_controlled`` | final | an audit sample (default 1 %) |
"""

from __future__ import annotations

from enum import StrEnum


class AutomationLevel(StrEnum):
    HUMAN_LED = "human_led"
    HUMAN_LED_MACHINE_SUPPORTED = "human_led_machine_supported"
    MACHINE_LED_HUMAN_SUPPORTED = "machine_led_human_supported"
    MACHINE_LED_HUMAN_GOVERNED = "machine_led_human_governed"
    MACHINE_CONTROLLED = "machine_controlled"

    @property
    def rank(self) -> int:
        """0 (a person decides everything) to 4 (the model alone): one step up is one more degree of trust."""
        return ORDER.index(self)

    @property
    def person_decides(self) -> bool:
        """Every answer waits for a person."""
        return self in (AutomationLevel.HUMAN_LED, AutomationLevel.HUMAN_LED_MACHINE_SUPPORTED)

    @property
    def default_audit_rate(self) -> float:
        """The share of final answers sampled for audit when the policy does not say."""
        return 0.05 if self is AutomationLevel.MACHINE_LED_HUMAN_SUPPORTED else 0.01

    @property
    def blind_by_default(self) -> bool:
        return self is AutomationLevel.HUMAN_LED

    def step(self, by: int) -> AutomationLevel | None:
        """The level ``by`` steps up (toward the model) or down; None past either end."""
        at = self.rank + by
        return ORDER[at] if 0 <= at < len(ORDER) else None


ORDER = (
    AutomationLevel.HUMAN_LED,
    AutomationLevel.HUMAN_LED_MACHINE_SUPPORTED,
    AutomationLevel.MACHINE_LED_HUMAN_SUPPORTED,
    AutomationLevel.MACHINE_LED_HUMAN_GOVERNED,
    AutomationLevel.MACHINE_CONTROLLED,
)
