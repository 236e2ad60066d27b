"""quorum-dr: a quorum-confirmed disaster-recovery watchdog."""

__version__ = "0.1.0"
