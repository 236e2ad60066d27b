"""The cold site's restore rehearsal: the state machine's steps (`service`) and their ports."""
