"""The local drill: scenarios, the event log, the report and the live progress view."""
