"""The layout both DynamoDB tables share (results and state): partition key `pk`, sort key `sk`,
TTL attribute `expires_at`. The CDK app declares the same layout for production; the sandbox and
the tests create tables with `create_table`, so there is one place that says what a table is."""

from __future__ import annotations

from typing import Any

PARTITION_KEY = "pk"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"


def create_table(client: Any, name: str) -> None:
    """Create a table of our layout (pay per request, TTL on `expires_at`) with a boto3 client."""
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": SORT_KEY, "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )
