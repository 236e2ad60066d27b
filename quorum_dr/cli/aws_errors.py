"""One line for an AWS error an operator can meet: what failed and what to do (exit code 3).

`drctl` never prints a traceback for an ordinary AWS answer: no credentials, no network, a state
machine or table that does not exist (wrong region, wrong name), an execution name already used,
a permission missing, an approval that came too late.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)

AWS_ERRORS = (BotoCoreError, ClientError)

_CODE_HINTS = {
    "StateMachineDoesNotExist": "the state machine does not exist: check --state-machine-arn "
    "(or STATE_MACHINE_ARN) and the region; the control stack's outputs name it",
    "ExecutionAlreadyExists": "an execution with this name already exists: give another --incident-id "
    "or leave it out to get a new one",
    "ExecutionLimitExceeded": "too many executions are running: wait, or look at `drctl status`",
    "InvalidArn": "not a valid ARN: check --state-machine-arn (or STATE_MACHINE_ARN)",
    "ResourceNotFoundException": "the table (or resource) does not exist: check --table "
    "(or STATE_TABLE_NAME) and the region (AWS_REGION: the home region)",
    "AccessDenied": "permission denied: the caller needs the operator policy the README names",
    "AccessDeniedException": "permission denied: the caller needs the operator policy the README names",
    "UnrecognizedClientException": "the credentials are not valid: log in again (aws sso login)",
    "InvalidClientTokenId": "the credentials are not valid: log in again (aws sso login)",
    "ExpiredToken": "the credentials have expired: log in again (aws sso login)",
    "ExpiredTokenException": "the credentials have expired: log in again (aws sso login)",
    "TaskTimedOut": "the waiting step no longer takes an answer (it timed out or the execution ended): "
    "see `drctl status`",
    "TaskDoesNotExist": "the waiting step no longer takes an answer (it timed out or the execution "
    "ended): see `drctl status`",
    "InvalidToken": "the incident's task token is not valid any more: see `drctl status`",
    "ThrottlingException": "AWS is throttling the calls: wait a few seconds and run it again",
    "ConditionalCheckFailedException": "the record changed while this command ran: run it again",
}


def _one_line(text: object, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_aws_error(action: str, error: Exception) -> str:
    """`cannot <action>: <what AWS said>; <what to do>` on one line."""
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        reason = "no AWS credentials found: set AWS_PROFILE or log in (aws sso login)"
    elif isinstance(error, NoRegionError):
        reason = "no AWS region: set AWS_REGION to the home region (or use a profile that names one)"
    elif isinstance(
        error, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError
    ):
        reason = f"AWS is unreachable ({_one_line(error, 160)}): check the network, a proxy, or the region"
    elif isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", "Unknown"))
        message = _one_line(details.get("Message", ""), 160)
        hint = _CODE_HINTS.get(code, "AWS refused the call")
        reason = f"{code}{': ' + message if message else ''}; {hint}"
    else:
        reason = _one_line(error)
    return f"cannot {action}: {reason}"
