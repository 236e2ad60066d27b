"""The watchdog run in simulated time over probe rounds, with the product's own decision code.

- `watchdog`: the simulation both users share: each region's round and its `ProbeFailed` rule, the
  failover execution's trigger check, lock and confirmation rounds, the scenario (all imported from
  the product, never re-implemented), over in-memory ports fed by a round source.
- `recording`: recorded probe results (an export of the results table, a drill's `events.jsonl`, the
  table itself) read into ProbeResults; the drill's `vote` event, one model for writer and reader.
- `moments`: `drctl replay`: the simulation over recorded rounds, every moment a verdict changed and
  what the state machine would have done, and two configs compared.

bench/policies.py runs the same simulation over generated traces.
"""
