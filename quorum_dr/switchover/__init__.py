"""The planned switchover's steps (statemachines/switchover.asl.yaml): plan and refuse, the
databases through their site agents and the sync check, the edge, and the record."""
