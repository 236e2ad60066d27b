"""Gathers what the readiness checks read, and asks the domain (`quorum_dr.domain.readiness`) to judge.

Read-only, a handful of calls per service:
- DynamoDB, home region: the state item and the lock item (state table), the probe results of the
  last `lookback_seconds(config)` (results table). "Now" is the home region's time, measured from
  the results table's HTTP `Date` (`HomeRegionClock`), so a laptop whose clock is off does not
  make results look fresh or stale;
- Step Functions, home region: the lock holder's execution (`DescribeExecution`), when the
  failover and switchover state machines are named;
- Secrets Manager: the Cloudflare API token (home region, `GetSecretValue`), and
  `DescribeSecret` of every secret the functions read, in every region that reads it
  (`quorum_dr.domain.cost.secret_copies`, the same list the stacks grant);
- Cloudflare, through the edge adapter: `GET /user/tokens/verify` and the reads of the records or
  pools a switch edits (`CloudflareEdge.describe`), never a write;
- EC2 / SSM in the cold site's region: the AMI id (config, SSM parameter, or the launch template),
  `DescribeImages`, `DescribeLaunchTemplates`, and `RunInstances` with `DryRun=True` on the launch
  template (the request a failover sends, `Ec2ColdSiteLauncher.dry_run`).

A call that fails becomes the one-line error of its fact, and the check that needed it is FAIL
with that line. `unreachable` collects the lines of failures that mean AWS itself could not be
asked (no credentials, credentials AWS rejects, no region, no network) and of a state or results
table that could not be read: `drctl readiness` exits 3 on them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as AwsConnectionError
from pydantic import ValidationError

from quorum_dr.adapters.aws_sdk import sdk_config
from quorum_dr.adapters.cloudflare_edge import CloudflareEdge
from quorum_dr.adapters.cold_site import Ec2ColdSiteLauncher
from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore
from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.file_sync import read_marker
from quorum_dr.adapters.wal_archive import (
    ArchiveError,
    ArchiveTarget,
    newest_backup,
    newest_segment,
    stored_encryption,
)
from quorum_dr.config import CloudflareEdge as EdgeConfig
from quorum_dr.config import ColdSite, FileSync, Service, WatchdogConfig
from quorum_dr.domain.cost import secret_copies
from quorum_dr.domain.edge import EdgeSwitchError
from quorum_dr.domain.edit_proof import EditProof
from quorum_dr.domain.readiness import (
    BackupFacts,
    ColdSiteFacts,
    EdgeFacts,
    FileSyncFacts,
    LockItem,
    Readiness,
    ReadinessFacts,
    RehearsalFacts,
    ResultFacts,
    SecretFact,
    StateFacts,
    StoredObject,
    TokenFacts,
    assess,
)
from quorum_dr.domain.redact import printable_line
from quorum_dr.domain.state import ServiceState
from quorum_dr.failover.operator import OperatorError, execution_arn
from quorum_dr.functions import PREFIX

T = TypeVar("T")

AWS_ERRORS = (BotoCoreError, ClientError)
# Errors that mean AWS could not be asked at all, as opposed to an answer about one resource.
UNREACHABLE_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    TokenRetrievalError,
    NoRegionError,
    AwsConnectionError,
    HTTPClientError,
)
UNREACHABLE_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "AuthFailure",
    }
)
EDGE_RETRY_BUDGET_SECONDS = 10.0  # a readiness round waits out a Cloudflare hiccup, not an outage
LOOKBACK_MIN_SECONDS = 600.0


def one_line(error: BaseException) -> str:
    """An AWS (or other) error as one printable line: `Code: message`."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code, message = str(details.get("Code", "Unknown")), str(details.get("Message", ""))
        text = f"{code}: {message}" if message else code
    else:
        text = str(error) or type(error).__name__
    return printable_line(text)


def error_code(error: BaseException) -> str | None:
    return str(error.response.get("Error", {}).get("Code")) if isinstance(error, ClientError) else None


def is_unreachable(error: BaseException) -> bool:
    """AWS could not be asked: credentials, region, network (not an answer about a resource)."""
    return isinstance(error, UNREACHABLE_ERRORS) or error_code(error) in UNREACHABLE_CODES


def launch_template_name(service: Service) -> str:
    """The cold site's launch template: the config's, else the one the CDK app creates
    (`stacks/cold_site.py`, `launch_template_name`; a test holds the two together)."""
    cold = service.cold_site
    assert cold is not None
    return cold.launch_template_name or f"{PREFIX}-{service.name}-cold"


def lookback_seconds(config: WatchdogConfig) -> float:
    """How far back the probe results are read: far enough to tell a silent region from a slow one."""
    return max(LOOKBACK_MIN_SECONDS, 10 * config.probe.interval_seconds, 2 * config.probe.freshness_seconds)


def reads_of(edge: EdgeConfig) -> str:
    """What the API token must read (and a switch edits), in words."""
    if edge.kind == "dns":
        return ", ".join(f"the {r.type} record {r.name}" for r in edge.records)
    pools = edge.pools
    assert pools is not None
    names = ", ".join(p for p in (pools.main, pools.dr, pools.cold) if p)
    return f"the load-balancer pools {names}"


EdgeFactory = Callable[[Service, str], CloudflareEdge]


def _edge(service: Service, token: str) -> CloudflareEdge:
    return CloudflareEdge(service.edge, service.sites, token, retry_budget_seconds=EDGE_RETRY_BUDGET_SECONDS)


class ReadinessGatherer:
    """Gathers the facts of one service (`gather`) and judges them (`assess`)."""

    def __init__(
        self,
        config: WatchdogConfig,
        *,
        state_table: str,
        results_table: str,
        state_machine_arns: Mapping[str, str | None] | None = None,
        session: Any = None,
        edge_factory: EdgeFactory = _edge,
        clock: Callable[[], float] = time.time,
        results_lookback_seconds: float | None = None,
        prove_edit: bool = False,
    ) -> None:
        """`state_machine_arns`: "failover" / "switchover" -> ARN, to ask whether the lock holder's
        execution still runs. `session`: a boto3 Session (tests give one under moto).
        `results_lookback_seconds`: how far back the probe results are read, default
        `lookback_seconds(config)` (the drill reads less: it evaluates every few seconds).
        `prove_edit`: write the edit check's marker when it is due (the scheduled function; drctl
        only reads it)."""
        self.config = config
        self.state_table = state_table
        self.results_table = results_table
        self.state_machine_arns = {k: v for k, v in (state_machine_arns or {}).items() if v}
        self.session = session or boto3.session.Session()
        self.edge_factory = edge_factory
        self.clock = clock
        self.results_lookback_seconds = results_lookback_seconds or lookback_seconds(config)
        self.prove_edit = prove_edit
        self.unreachable: list[str] = []
        self._clients: dict[tuple[str, str], Any] = {}
        # kept across gathers (the drill gathers every few seconds): each costs a client's creation
        self._edges: dict[tuple[str, str], CloudflareEdge] = {}
        self._launcher: Ec2ColdSiteLauncher | None = None

    # -- plumbing ---------------------------------------------------------------------------------

    def _client(self, name: str, region: str) -> Any:
        if (name, region) not in self._clients:
            self._clients[(name, region)] = self.session.client(name, region_name=region, config=sdk_config())
        return self._clients[(name, region)]

    def _note(self, what: str, error: BaseException, *, needed: bool = False) -> str:
        """The error's one line, kept in `unreachable` when AWS could not be asked, or when the round
        cannot be trusted without the answer (`needed`: the tables)."""
        line = one_line(error)
        if needed or is_unreachable(error):
            self.unreachable.append(f"cannot {what}: {line}")
        return line

    def _attempt(
        self, what: str, call: Callable[[], T], *, needed: bool = False
    ) -> tuple[T | None, str | None]:
        """(the answer, None) or (None, the one-line error)."""
        try:
            return call(), None
        except AWS_ERRORS as exc:
            return None, self._note(what, exc, needed=needed)

    # -- the whole round --------------------------------------------------------------------------

    def assess(self, service: Service) -> Readiness:
        return assess(self.gather(service), self.config)

    def gather(self, service: Service) -> ReadinessFacts:
        home = self.config.home_region
        resource = self.session.resource("dynamodb", region_name=home, config=sdk_config())
        results_store = DynamoDbResultStore(
            resource.Table(self.results_table),
            ttl_seconds=self.config.probe.result_ttl_seconds,
            clock=self.clock,
            home_clock=True,
        )
        measured, _ = self._attempt(f"read the results table {self.results_table}", results_store.home_time)
        now = measured if measured is not None else self.clock()
        state = self._state(service, DynamoStateStore(self.state_table, resource=resource), now)
        token, edge = self._cloudflare(service, now)
        return ReadinessFacts(
            service=service.name,
            now=now,
            state=state,
            results=self._results(service, results_store, now),
            edge=edge,
            token=token,
            cold=self._cold_site(service, service.cold_site) if service.cold_site else None,
            secrets=self._secrets(service),
            file_sync=self._file_sync(service.file_sync) if service.file_sync else None,
            backups=self._backups(service.cold_site)
            if service.cold_site and service.cold_site.wal_archive
            else None,
            rehearsal=self._rehearsal(service, resource)
            if service.cold_site and service.cold_site.wal_archive
            else None,
        )

    # -- the restore rehearsal --------------------------------------------------------------------

    def _rehearsal(self, service: Service, resource: Any) -> RehearsalFacts:
        """The last recorded rehearsal (state table, pk REHEARSAL#<service>, sk LATEST)."""
        from quorum_dr.adapters.rehearsal import DynamoRehearsalStore

        store = DynamoRehearsalStore(self.state_table, resource=resource)
        try:
            latest, error = self._attempt(
                f"read the last rehearsal of {service.name} from the state table {self.state_table}",
                lambda: store.latest(service.name),
            )
        except ValidationError as exc:
            return RehearsalFacts(error=f"the last rehearsal's record is malformed: {one_line(exc)}")
        return RehearsalFacts(latest=latest, error=error)

    # -- backups ----------------------------------------------------------------------------------

    def _backups(self, cold: ColdSite) -> BackupFacts:
        """The newest base backup and archived segment, listed with boto3 (no barman needed)."""
        target = ArchiveTarget.of(cold)
        s3 = self.session.client(
            "s3", region_name=cold.region, endpoint_url=target.endpoint_url, config=sdk_config()
        )

        def listed(newest: Callable[[Any, ArchiveTarget], T]) -> tuple[T | None, str | None]:
            try:
                return newest(s3, target), None
            except ArchiveError as exc:
                return None, printable_line(str(exc))

        backup, backup_error = listed(newest_backup)
        segment, segment_error = listed(newest_segment)
        stored: list[StoredObject] = []
        encryption_error = None
        if target.kms_key_arn:
            # backup.info only: the role may read base/ but not the WAL, and every upload lands
            # under the bucket's one default key, so this object tells which key that is
            keys = [backup.key] if backup and backup.key else []
            try:
                for key in keys:
                    found = stored_encryption(s3, target, key)
                    stored.append(
                        StoredObject(key=key, algorithm=found.algorithm, kms_key_id=found.kms_key_id)
                    )
            except ArchiveError as exc:
                encryption_error = printable_line(str(exc))
        return BackupFacts(
            archive=target.describe(),
            backup_id=backup.backup_id if backup else None,
            backup_finished_at=backup.finished_at if backup else None,
            backup_error=backup_error,
            segment=segment.name if segment else None,
            segment_archived_at=segment.archived_at if segment else None,
            segment_error=segment_error,
            stored=stored,
            encryption_error=encryption_error,
        )

    # -- file sync --------------------------------------------------------------------------------

    def _file_sync(self, sync: FileSync) -> FileSyncFacts:
        """The marker DR serves (`quorum_dr.adapters.file_sync`: one bounded try, URL redacted)."""
        return read_marker(sync)

    # -- state and lock ---------------------------------------------------------------------------

    def _state(self, service: Service, store: DynamoStateStore, now: float) -> StateFacts:
        where = f"the state table {self.state_table}"
        raw, error = self._attempt(
            f"read the state of {service.name} from {where}",
            lambda: store.get_state(service.name),
            needed=True,
        )
        lock_raw, lock_error = self._attempt(
            f"read the lock of {service.name} from {where}", lambda: store.get_lock(service.name), needed=True
        )
        if error or lock_error or raw is None:
            return StateFacts(error=error or lock_error or "no answer")
        try:
            state = ServiceState.model_validate({**raw, "service": service.name})
            lock = LockItem.model_validate(lock_raw) if lock_raw else None
        except ValidationError as exc:
            line = f"the state item of {service.name} is malformed: {one_line(exc)}"
            self.unreachable.append(f"cannot read the state of {service.name}: {line}")
            return StateFacts(error=line)
        status, unchecked = None, None
        if (
            lock is not None
            and not lock.kept
            and (lock.lock_expires_at is None or lock.lock_expires_at >= now)
        ):
            status, unchecked = self._execution(lock.holder or lock.incident_id or "")
        return StateFacts(state=state, lock=lock, execution_status=status, execution_unchecked=unchecked)

    def _execution(self, holder: str) -> tuple[str | None, str | None]:
        """Step Functions' status of the lock holder's execution (NOT_FOUND when neither state
        machine has it), or None and why it was not known."""
        if not self.state_machine_arns:
            return None, "give --state-machine-arn and --switchover-state-machine-arn to ask Step Functions"
        sfn = self._client("stepfunctions", self.config.home_region)
        for _, arn in sorted(self.state_machine_arns.items()):
            try:
                return str(sfn.describe_execution(executionArn=execution_arn(arn, holder))["status"]), None
            except OperatorError as exc:
                return None, str(exc)
            except AWS_ERRORS as exc:
                if error_code(exc) == "ExecutionDoesNotExist":
                    continue
                line = self._note(f"ask Step Functions about execution {holder}", exc)
                return None, f"Step Functions could not tell ({line})"
        missing = sorted({"failover", "switchover"} - set(self.state_machine_arns))
        if missing:
            return (
                None,
                f"no execution {holder} in the {' or '.join(sorted(self.state_machine_arns))} state "
                f"machine, and the {' and '.join(missing)} state machine was not given",
            )
        return "NOT_FOUND", None

    # -- probe results ----------------------------------------------------------------------------

    def _results(self, service: Service, store: DynamoDbResultStore, now: float) -> ResultFacts:
        since = now - self.results_lookback_seconds
        what = f"read the probe results of {service.name} from the results table {self.results_table}"
        try:
            results, error = self._attempt(
                what, lambda: store.recent_results(service.name, since), needed=True
            )
        except ValidationError as exc:
            results, error = None, f"a stored probe result is malformed: {one_line(exc)}"
        return ResultFacts(results=results or [], since=since, error=error)

    # -- Cloudflare -------------------------------------------------------------------------------

    def _cloudflare(self, service: Service, now: float) -> tuple[TokenFacts, EdgeFacts]:
        secret, reads = service.edge.api_token_secret, reads_of(service.edge)
        secrets = self._client("secretsmanager", self.config.home_region)
        value, error = self._attempt(
            f"read the secret {secret} in {self.config.home_region}",
            lambda: secrets.get_secret_value(SecretId=secret)["SecretString"],
        )
        if error or not value:
            why = f"the secret could not be read in {self.config.home_region}: {error or 'it holds no text'}"
            return TokenFacts(secret=secret, reads=reads, error=why), EdgeFacts(error=f"the API token: {why}")
        api_token = str(value).strip()
        if (service.name, api_token) not in self._edges:
            self._edges[(service.name, api_token)] = self.edge_factory(service, api_token)
        edge = self._edges[(service.name, api_token)]
        status, expires_on, verify_error = None, None, None
        try:
            answer = edge.verify_token()
            status, expires_on = str(answer.get("status") or "") or None, _epoch(answer.get("expires_on"))
        except EdgeSwitchError as exc:
            verify_error = one_line(exc)
        try:
            site, reason = edge.describe()
            edge_facts, read_error = EdgeFacts(site=site, reason=reason), None
        except EdgeSwitchError as exc:
            read_error = one_line(exc)
            edge_facts = EdgeFacts(error=read_error)
        proof, edit_error = EditProof(None, "edge.edit_proof_interval_seconds is off"), None
        every = service.edge.edit_proof_interval_seconds
        if every and not (verify_error or read_error):
            try:
                proof = edge.prove_edit(now=now, every=every, write=self.prove_edit)
            except EdgeSwitchError as exc:
                edit_error = one_line(exc)
        token = TokenFacts(
            secret=secret,
            reads=reads,
            error=verify_error,
            status=status,
            expires_on=expires_on,
            read_error=read_error,
            edit_proven_at=proof.proven_at,
            edit_proof=proof.sentence,
            edit_error=edit_error,
        )
        return token, edge_facts

    # -- cold site --------------------------------------------------------------------------------

    def _cold_site(self, service: Service, cold: ColdSite) -> ColdSiteFacts:
        region, template = cold.region, launch_template_name(service)
        ec2 = self._client("ec2", region)
        found, template_error = self._template(ec2, template, region)
        image_id, source, image_error = self._image(cold, template if found else None)
        image_state = None
        if image_id and not image_error:
            image_state, image_error = self._image_state(ec2, image_id, region)
        code, message = None, "not tried: the launch template is missing"
        if found:
            if self._launcher is None:
                self._launcher = Ec2ColdSiteLauncher(session=self.session)
            launcher = self._launcher
            answer, error = self._attempt(
                f"ask EC2 for a dry run in {region}", lambda: launcher.dry_run(cold, image_id, template)
            )
            code, message = answer if answer is not None else (None, f"not tried: {error}")
        return ColdSiteFacts(
            region=region,
            image_source=source,
            image_id=image_id,
            image_error=image_error,
            image_state=image_state,
            template=template,
            template_found=bool(found),
            template_error=template_error,
            dry_run_code=code,
            dry_run_message=message,
        )

    def _template(self, ec2: Any, template: str, region: str) -> tuple[bool, str | None]:
        try:
            ec2.describe_launch_templates(LaunchTemplateNames=[template])
        except AWS_ERRORS as exc:
            if error_code(exc) == "InvalidLaunchTemplateName.NotFoundException":
                return False, None
            return False, self._note(f"describe launch template {template} in {region}", exc)
        return True, None

    def _image(self, cold: ColdSite, template: str | None) -> tuple[str | None, str, str | None]:
        """(AMI id, where it comes from, why it is unknown)."""
        if cold.ami_id:
            return cold.ami_id, "ami_id in the config", None
        if cold.ami_ssm_parameter:
            return self._parameter(
                cold.ami_ssm_parameter, cold.region, f"SSM parameter {cold.ami_ssm_parameter}"
            )
        source = f"launch template {cold.launch_template_name}"
        if template is None:
            return None, source, "the launch template does not exist"
        ec2 = self._client("ec2", cold.region)
        versions, error = self._attempt(
            f"describe launch template {template}",
            lambda: ec2.describe_launch_template_versions(LaunchTemplateName=template, Versions=["$Default"]),
        )
        if error or not versions:
            return None, source, error or "no answer"
        data = (versions.get("LaunchTemplateVersions") or [{}])[0].get("LaunchTemplateData", {})
        image = str(data.get("ImageId") or "")
        if image.startswith("resolve:ssm:"):
            name = image.removeprefix("resolve:ssm:")
            return self._parameter(name, cold.region, f"{source} (SSM parameter {name})")
        return (image or None), source, None if image else "its default version names no AMI"

    def _parameter(self, name: str, region: str, source: str) -> tuple[str | None, str, str | None]:
        ssm = self._client("ssm", region)
        value, error = self._attempt(
            f"read SSM parameter {name} in {region}",
            lambda: ssm.get_parameter(Name=name)["Parameter"]["Value"],
        )
        if error:
            missing = error.startswith("ParameterNotFound")
            return None, source, f"the parameter does not exist in {region}" if missing else error
        return (str(value).strip() or None), source, None if str(value).strip() else "the parameter is empty"

    def _image_state(self, ec2: Any, image_id: str, region: str) -> tuple[str | None, str | None]:
        """(DescribeImages' state, None), (None, None) for no such image, or (None, the error)."""
        try:
            images = ec2.describe_images(ImageIds=[image_id]).get("Images", [])
        except AWS_ERRORS as exc:
            if error_code(exc) in ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"):
                return None, None
            return None, self._note(f"describe AMI {image_id} in {region}", exc)
        return (str(images[0].get("State")) if images else None), None

    # -- secrets ----------------------------------------------------------------------------------

    def _secrets(self, service: Service) -> list[SecretFact]:
        """DescribeSecret of every secret this service's functions read, where they read it. After
        an error that means the region cannot be asked, its other secrets carry the same error."""
        copies = secret_copies(self.config.model_copy(update={"services": [service]}))
        facts: list[SecretFact] = []
        for region, names in sorted(copies.items()):
            client = self._client("secretsmanager", region)
            cut_off: str | None = None
            for name in sorted(names):
                if cut_off:
                    facts.append(SecretFact(region=region, name=name, error=cut_off))
                    continue
                try:
                    facts.append(self._secret(client, region, name))
                except AWS_ERRORS as exc:
                    line = self._note(f"describe secret {name} in {region}", exc)
                    facts.append(SecretFact(region=region, name=name, error=line))
                    cut_off = line if is_unreachable(exc) else None
        return facts

    @staticmethod
    def _secret(client: Any, region: str, name: str) -> SecretFact:
        try:
            described = client.describe_secret(SecretId=name)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return SecretFact(region=region, name=name, exists=False)
            raise
        deleted = described.get("DeletedDate")
        return SecretFact(
            region=region, name=name, exists=True, deleted_at=deleted.timestamp() if deleted else None
        )


def _epoch(value: Any) -> float | None:
    """Cloudflare's `expires_on` (an ISO 8601 text, or a datetime from the SDK) as epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
