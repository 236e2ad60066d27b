"""Fixed physical names, so that stacks in different regions can address each other's resources.

Probe stacks write to the home region's tables and bus, the control stack invokes the probe
functions of every region, and the cold-site instance reports to the state machine: with fixed
names each side computes the other's ARN without a cross-stack reference (and without a cycle).
One deployment per account.
"""

from __future__ import annotations

from aws_cdk import Arn, ArnFormat, Stack

from quorum_dr.domain.standby_health import STANDBY_DOWN as STANDBY_DOWN
from quorum_dr.domain.standby_health import STANDBY_RECOVERED as STANDBY_RECOVERED

# The functions' names live in the CDK-free table the local harness shares; named here too, so
# that a stack says naming.PROBE, naming.function_name(...) as before.
from quorum_dr.functions import ACTION_FUNCTIONS as ACTION_FUNCTIONS
from quorum_dr.functions import MACHINE_FUNCTIONS as MACHINE_FUNCTIONS
from quorum_dr.functions import PREFIX as PREFIX
from quorum_dr.functions import PROBE as PROBE
from quorum_dr.functions import READINESS as READINESS
from quorum_dr.functions import REHEARSAL_FUNCTIONS as REHEARSAL_FUNCTIONS
from quorum_dr.functions import function_name as function_name
from quorum_dr.functions import substitution_name as substitution_name

RESULTS_TABLE = f"{PREFIX}-results"
STATE_TABLE = f"{PREFIX}-state"
EVENT_BUS = PREFIX
STATE_MACHINE = f"{PREFIX}-failover"
SWITCHOVER_STATE_MACHINE = f"{PREFIX}-switchover"
REHEARSAL_STATE_MACHINE = f"{PREFIX}-rehearsal"
EVENT_SOURCE = "quorum-dr"
PROBE_DETAIL_TYPES = ("ProbeFailed", "VerdictChanged", "SplitBrainSuspected", STANDBY_DOWN, STANDBY_RECOVERED)
SPLIT_BRAIN_SUSPECTED = "SplitBrainSuspected"


def function_arn(stack: Stack, name: str, region: str) -> str:
    return stack.format_arn(
        service="lambda",
        region=region,
        resource="function",
        resource_name=function_name(name),
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def table_arn(stack: Stack, table: str, region: str) -> str:
    return stack.format_arn(service="dynamodb", region=region, resource="table", resource_name=table)


def event_bus_arn(stack: Stack, region: str) -> str:
    return stack.format_arn(service="events", region=region, resource="event-bus", resource_name=EVENT_BUS)


def state_machine_arn(stack: Stack, region: str) -> str:
    return stack.format_arn(
        service="states",
        region=region,
        resource="stateMachine",
        resource_name=STATE_MACHINE,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def topic_arn(stack: Stack, region: str, topic_name: str) -> str:
    return Arn.format({"service": "sns", "region": region, "resource": topic_name}, stack)


def stack_region_suffix(region: str) -> str:
    """`eu-west-2` -> `EuWest2`, for stack and construct ids."""
    return "".join(part.capitalize() for part in region.split("-"))
