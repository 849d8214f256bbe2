"""The demo scenario behind `make demo`; each issue grows it until it shows the whole loop."""

from matchday.demo.fraud import transactions
from matchday.demo.scenario import run

__all__ = ["run", "transactions"]
