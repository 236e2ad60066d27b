"""The local world: everything that never runs in a Lambda.

`standins/` holds the local stand-ins for what production has (PostgreSQL clusters, the booking
application, the Cloudflare API emulator and edge proxy, region network namespaces, client
traffic); `drill/` runs a whole failover drill on one machine; `sfn_harness.py` runs the real
state machine in moto's Step Functions engine; `rig.py` is the in-process end-to-end rig of the
integration tests and the bench; `system_config.py` builds the watchdog config of the local
system (for the drill and the rig) from the same models production loads.
"""
