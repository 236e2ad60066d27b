"""The action layer of the failover state machine: one service per Lambda, written against ports."""
