"""The site agent: one small signed HTTP service per database host that acts on the local
PostgreSQL only (status, freeze, unfreeze, stop, start, follow, rewind, rebuild, promote) and
receives the fence_main and before_promote hooks. `contract.py` is what it and its client
(`quorum_dr.adapters.site_agent`) exchange."""
