"""The CDK app of quorum-dr: one stack per concern-region, each composing one construct per concern."""
