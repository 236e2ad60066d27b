"""The probe functions of every region, invoked from the home region (boto3 Lambda Invoke).

- `LambdaProbeInvoker` (the ProbeInvoker port): an on-demand round in every region, in parallel.
  The rounds write their results to the results table themselves; this only says, per region, how
  its invocation went.
- `LambdaSwitchVerifier` (the SwitchVerifier port): a verify round in every region, in parallel;
  verified when at least `quorum` regions saw the target site's marker through the public hostname
  (or, origin only, saw the target's own checks pass).

Each invocation is bounded (connect and read timeouts, no SDK retries, and a deadline on the
thread); a region that fails, errors or does not answer in time is named in the sentence and is
never fatal by itself: the quorum decides.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from quorum_dr.observability import logger
from quorum_dr.ports import ProbeInvoker, SwitchVerifier
from quorum_dr.probes.event import OnDemandRound, VerifyRequest

ClientFactory = Callable[[str, float], Any]
DEADLINE_GRACE_SECONDS = 1.0  # on top of the invocation timeout, before a region is given up
Settled = Callable[[frozenset[str]], str | None]  # answered regions -> why the rest may be left out


def lambda_client(region: str, timeout_seconds: float) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "lambda",
        region_name=region,
        config=Config(
            connect_timeout=min(10.0, timeout_seconds),
            read_timeout=timeout_seconds,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


@dataclass(frozen=True)
class Invocation:
    """One region's answer: its payload, or the sentence saying why there is none."""

    region: str
    payload: dict[str, Any] | None
    problem: str | None
    silent: bool = False  # no answer: timed out, or left out of a round already settled


class ProbeFunctions:
    """Invokes the probe function of every region with one payload, in parallel, bounded."""

    def __init__(
        self,
        function_arns: Mapping[str, str],
        *,
        timeout_seconds: float,
        client_factory: ClientFactory = lambda_client,
    ) -> None:
        if not function_arns:
            raise ValueError("no probe function ARNs (PROBE_FUNCTION_ARNS is empty)")
        self.function_arns = dict(function_arns)
        self.timeout_seconds = timeout_seconds
        self._client_factory = client_factory
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, region: str) -> Any:
        with self._lock:
            if region not in self._clients:
                self._clients[region] = self._client_factory(region, self.timeout_seconds)
            return self._clients[region]

    def _invoke(self, region: str, payload: Mapping[str, Any]) -> Invocation:
        arn = self.function_arns[region]
        try:
            answer = self._client(region).invoke(
                FunctionName=arn, InvocationType="RequestResponse", Payload=json.dumps(payload).encode()
            )
            body = answer["Payload"].read()
        except Exception as exc:  # botocore errors and timeouts: this region's problem only
            return Invocation(region, None, f"invoking its probe failed: {type(exc).__name__}: {exc}")
        try:
            data = json.loads(body or b"null")
        except ValueError:
            return Invocation(region, None, "its probe answered something that is not JSON")
        if answer.get("FunctionError"):
            kind = data.get("errorType", "error") if isinstance(data, dict) else "error"
            message = data.get("errorMessage", "") if isinstance(data, dict) else str(data)
            return Invocation(region, None, f"its probe failed: {kind}: {message}")
        if not isinstance(data, dict):
            return Invocation(region, None, "its probe answered no JSON object")
        return Invocation(region, data, None)

    def invoke_all(
        self, payload: Mapping[str, Any], *, settled: Settled | None = None
    ) -> dict[str, Invocation]:
        """Every region's answer; a region still running after the timeout is reported as such.

        `settled`, when given, is asked after each answer with the regions that answered so far;
        once it returns a sentence, the regions still out are reported silent with it and this
        returns at once. A late invocation is abandoned, never waited for: its thread ends by the
        client's own read timeout, and nothing here joins it.
        """
        pool = ThreadPoolExecutor(max_workers=len(self.function_arns), thread_name_prefix="probe-invoke")
        try:
            futures = {pool.submit(self._invoke, region, payload): region for region in self.function_arns}
            deadline = time.monotonic() + self.timeout_seconds + DEADLINE_GRACE_SECONDS
            pending = set(futures)
            answers: dict[str, Invocation] = {}
            silent_because: str | None = None
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                done, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
                for future in done:
                    answers[futures[future]] = self._answer(futures[future], future)
                if pending and done and settled is not None:
                    silent_because = settled(frozenset(answers))
                    if silent_because:
                        break
            for future in pending:
                region = futures[future]
                problem = (
                    f"silent: the round was settled without it ({silent_because})"
                    if silent_because
                    else f"its probe did not answer within {self.timeout_seconds:g} s"
                )
                answers[region] = Invocation(region, None, problem, silent=True)
            return {region: answers[region] for region in self.function_arns}
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _answer(region: str, future: Future[Invocation]) -> Invocation:
        error = future.exception()
        if error is not None:
            return Invocation(region, None, f"invoking its probe failed: {error}")
        return future.result()


class LambdaProbeInvoker(ProbeInvoker):
    def __init__(self, functions: ProbeFunctions) -> None:
        self.functions = functions

    def run_round(
        self,
        *,
        service: str,
        round_id: str,
        incident_id: str,
        sites: list[str],
        settled: Settled | None = None,
    ) -> dict[str, str]:
        event = OnDemandRound.model_validate(
            {"round_id": round_id, "service": service, "sites": sites, "incident_id": incident_id}
        ).model_dump(mode="json", exclude_none=True)
        started = time.monotonic()
        sentences: dict[str, str] = {}
        for region, answer in self.functions.invoke_all(event, settled=settled).items():
            if answer.payload is None:
                sentences[region] = f"{region}: {answer.problem}"
                logger.warning(sentences[region], extra={"round_id": round_id})
            else:
                sentences[region] = f"{region}: {answer.payload.get('reason') or 'round done'}"
        logger.info(
            f"on-demand round {round_id} in {len(sentences)} region(s): {time.monotonic() - started:.2f} s"
        )
        return sentences


class LambdaSwitchVerifier(SwitchVerifier):
    def __init__(
        self, functions: ProbeFunctions, *, quorum: int, public_hostname: Callable[[str], str]
    ) -> None:
        self.functions = functions
        self.quorum = quorum
        self._hostname = public_hostname

    def verify(
        self, *, service: str, expect_site: str, incident_id: str, origin_only: bool
    ) -> dict[str, Any]:
        event = VerifyRequest.model_validate(
            {
                "action": "verify",
                "service": service,
                "expect_site": expect_site,
                "incident_id": incident_id,
                "origin_only": origin_only,
            }
        ).model_dump(mode="json", exclude_none=True)
        answers = self.functions.invoke_all(event)
        regions: dict[str, dict[str, Any]] = {}
        for region, answer in sorted(answers.items()):
            if answer.payload is None:
                regions[region] = {"ok": False, "marker_seen": None, "reason": f"{region}: {answer.problem}"}
            else:
                regions[region] = {
                    "ok": bool(answer.payload.get("ok")),
                    "marker_seen": answer.payload.get("marker_seen"),
                    "reason": str(answer.payload.get("reason") or region),
                }
        saw = [region for region, seen in regions.items() if seen["ok"]]
        verified = len(saw) >= self.quorum
        what = (
            f"{expect_site}'s own checks pass"
            if origin_only
            else f"{self._hostname(service)} is served by {expect_site}"
        )
        verdict = "verified" if verified else "NOT verified"
        reason = (
            f"{verdict}: {len(saw)} of {len(regions)} regions see that {what} (quorum {self.quorum}); "
            + "; ".join(seen["reason"] for seen in regions.values())
        )
        return {"verified": verified, "reason": reason, "regions": regions}
