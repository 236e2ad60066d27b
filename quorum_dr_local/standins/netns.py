"""Probe regions as distinct network identities: one network namespace per region, on a bridge.

Layout of one `RegionNetwork` (root only; every name carries a per-run prefix `qdr-<pid>-`):

    root namespace                                     region namespaces
    bridge qdr-<pid>-br  10.213.N.1/24 (control)        qdr-<pid>-r1   10.213.N.11  (veth)
      + one address per site: 10.213.N.2, .3, ...       qdr-<pid>-r2   10.213.N.12

N is chosen from the PID (`run_subnet`), so runs side by side use different subnets.
                                                        ...

Servers of the sites run in the root namespace and listen on 0.0.0.0 or on their site address;
a region reaches a site at its site address. These addresses exist only on the bridge and in the
namespaces we create: no traffic leaves the machine.

A partition between one region and one site is a real network fault made inside the region's
namespace: with iptables, `OUTPUT -d SITE_IP [-p tcp --dport PORT] -j DROP`; without it, a
permanent neighbour entry that maps the site address to a MAC address nobody owns, so the
region's packets to that site vanish on the bridge. Either way the region's clients get real
connect timeouts, not a refusal. `link_down(region)` cuts a whole region off.

`teardown()` removes what this run created (by its prefix); `cleanup_stale()` removes what earlier
runs of ours left behind after a crash (names whose PID is gone). Both are idempotent.

`inside(region)` switches the calling thread (only that thread) into a region's namespace, so
in-process code such as a probe handler opens its sockets from that region.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "qdr-"


def run_subnet(pid: int | None = None) -> str:
    """This run's /24 inside 10.213.0.0/16, chosen by PID so that two runs side by side (a drill
    and the netns tests, say) never share a bridge subnet."""
    return f"10.213.{(os.getpid() if pid is None else pid) % 254 + 1}.0/24"


CLONE_NEWNET = 0x40000000
BOGUS_MAC = "02:00:00:00:de:ad"  # locally administered, owned by nobody on our bridge
COMMAND_TIMEOUT_SECONDS = 10
SKIP_MESSAGE = (
    "network namespaces are unavailable ({why}); scenarios that need a real partition between "
    "one probe region and one site are skipped; run the drill as root to include them"
)


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be used here (not root, or `ip` missing). `str()` is the skip message."""


class NetnsError(RuntimeError):
    """An `ip`/`iptables` command failed."""


def availability() -> str | None:
    """None when namespaces can be used; otherwise the reason they cannot."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "not a Linux host"
    if os.geteuid() != 0:
        return "not running as root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    return None


def require_available() -> None:
    why = availability()
    if why is not None:
        raise NetnsUnavailable(SKIP_MESSAGE.format(why=why))


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS, check=False
    )
    if check and done.returncode != 0:
        raise NetnsError(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done


def list_namespaces() -> list[str]:
    done = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def list_links() -> list[str]:
    done = _run(["ip", "-o", "link", "show"], check=False)
    names = []
    for line in done.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def cleanup_prefix(prefix: str = PREFIX) -> list[str]:
    """Delete every namespace and link whose name starts with `prefix`; return what was removed.

    Processes still running inside a namespace of ours are killed first (by the PIDs the kernel
    lists for that namespace), so the namespace really goes away.
    """
    removed = []
    for name in list_namespaces():
        if name.startswith(prefix):
            _kill_namespace_processes(name)
            _run(["ip", "netns", "delete", name], check=False)
            removed.append(f"netns {name}")
    for link in list_links():
        if link.startswith(prefix):
            _run(["ip", "link", "delete", link], check=False)
            removed.append(f"link {link}")
    return removed


def cleanup_stale(prefix: str = PREFIX) -> list[str]:
    """Remove what crashed runs left: names `qdr-<pid>-...` whose run (that PID) is gone."""
    removed = []
    seen = {n for n in list_namespaces() + list_links() if n.startswith(prefix)}
    for owner in sorted({n[len(prefix) :].split("-", 1)[0] for n in seen}):
        if owner.isdigit() and not _alive(int(owner)):
            removed += cleanup_prefix(f"{prefix}{owner}-")
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace_processes(namespace: str) -> None:
    done = _run(["ip", "netns", "pids", namespace], check=False)
    for token in done.stdout.split():
        if token.isdigit():
            try:
                os.kill(int(token), signal.SIGKILL)
            except ProcessLookupError:
                pass


@dataclass
class Region:
    name: str  # the probe region, e.g. eu-west-2
    namespace: str
    host_link: str  # veth end on the bridge
    inner_link: str  # veth end inside the namespace
    address: str


@dataclass
class Partition:
    region: str
    address: str
    port: int | None
    method: str  # "iptables" or "neighbour"


@dataclass
class NamespacedProcess:
    """A process started inside a region's namespace; `pid` was written by the process itself."""

    region: str
    pid: int
    popen: subprocess.Popen[bytes]

    def stop(self, timeout: float = 5.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)


@dataclass
class RegionNetwork:
    """A bridge with one namespace per probe region. Build with `create()`; always `teardown()`."""

    regions_wanted: Sequence[str]
    prefix: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}-")
    subnet: str = field(default_factory=run_subnet)
    regions: dict[str, Region] = field(default_factory=dict)
    sites: dict[str, str] = field(default_factory=dict)
    partitions: list[Partition] = field(default_factory=list)
    processes: list[NamespacedProcess] = field(default_factory=list)
    _created: bool = False

    # -- addresses -----------------------------------------------------------------------------

    @property
    def _network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    @property
    def bridge_address(self) -> str:
        """The control address: every region reaches it unless its link is down."""
        return str(self._network.network_address + 1)

    @property
    def prefix_length(self) -> int:
        return self._network.prefixlen

    # -- life cycle ----------------------------------------------------------------------------

    def create(self) -> RegionNetwork:
        require_available()
        if len(self.regions_wanted) > 80:
            raise ValueError("at most 80 probe regions fit in the address plan")
        if len(self.prefix) > 12:
            raise ValueError(f"prefix {self.prefix!r} too long for interface names (max 12 characters)")
        self._created = True
        try:
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            _run(["ip", "addr", "add", f"{self.bridge_address}/{self.prefix_length}", "dev", self.bridge])
            _run(["ip", "link", "set", self.bridge, "up"])
            for index, name in enumerate(self.regions_wanted, start=1):
                self._add_region(index, name)
        except BaseException:
            self.teardown()
            raise
        return self

    def _add_region(self, index: int, name: str) -> None:
        namespace = f"{self.prefix}r{index}"
        host_link, inner_link = f"{self.prefix}h{index}", f"{self.prefix}n{index}"
        address = str(self._network.network_address + 10 + index)
        _run(["ip", "netns", "add", namespace])
        _run(["ip", "link", "add", host_link, "type", "veth", "peer", "name", inner_link])
        _run(["ip", "link", "set", inner_link, "netns", namespace])
        _run(["ip", "link", "set", host_link, "master", self.bridge, "up"])
        inside = ["ip", "netns", "exec", namespace]
        _run([*inside, "ip", "addr", "add", f"{address}/{self.prefix_length}", "dev", inner_link])
        _run([*inside, "ip", "link", "set", inner_link, "up"])
        _run([*inside, "ip", "link", "set", "lo", "up"])
        self.regions[name] = Region(name, namespace, host_link, inner_link, address)

    def add_site(self, site: str) -> str:
        """Give `site` its own address on the bridge (10.213.N.2, .3, ...) and return it."""
        if site in self.sites:
            return self.sites[site]
        if len(self.sites) >= 8:
            raise ValueError("at most 8 site addresses (.2 to .9 of the run's subnet)")
        address = str(self._network.network_address + 2 + len(self.sites))
        _run(["ip", "addr", "add", f"{address}/32", "dev", self.bridge])
        self.sites[site] = address
        return address

    def teardown(self) -> list[str]:
        """Stop our processes, remove our namespaces and links. Safe to call twice."""
        for process in self.processes:
            process.stop()
        self.processes.clear()
        self.partitions.clear()
        if not self._created:
            return []
        removed = cleanup_prefix(self.prefix)
        self.regions.clear()
        self.sites.clear()
        self._created = False
        return removed

    def __enter__(self) -> RegionNetwork:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    # -- running things inside a region --------------------------------------------------------

    def region(self, name: str) -> Region:
        try:
            return self.regions[name]
        except KeyError:
            raise KeyError(f"no probe region {name!r}; have {sorted(self.regions)}") from None

    def run(self, region: str, argv: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command inside the region's namespace and wait for it."""
        namespace = self.region(region).namespace
        return subprocess.run(
            ["ip", "netns", "exec", namespace, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, region: str, argv: Sequence[str], **popen: object) -> NamespacedProcess:
        """Start a long-running process inside the region; the PID is written by the process itself."""
        namespace = self.region(region).namespace
        with tempfile.TemporaryDirectory(prefix="qdr-pid-") as folder:
            pidfile = Path(folder) / "pid"
            shell = 'echo $$ > "$0"; exec "$@"'
            popen_process = subprocess.Popen(  # noqa: S603 - argv built from our own names
                ["ip", "netns", "exec", namespace, "sh", "-c", shell, str(pidfile), *argv],
                **popen,  # type: ignore[call-overload]
            )
            pid = _wait_for_pidfile(pidfile, popen_process)
        process = NamespacedProcess(region, pid, popen_process)
        self.processes.append(process)
        return process

    @contextmanager
    def inside(self, region: str) -> Iterator[None]:
        """Switch the calling thread into the region's namespace for the block; its sockets stay there."""
        target = Path("/run/netns") / self.region(region).namespace
        with _thread_in_namespace(target):
            yield

    # -- faults --------------------------------------------------------------------------------

    def partition(
        self, region: str, address: str, port: int | None = None, method: str | None = None
    ) -> Partition:
        """Drop every packet from `region` to `address` (and `port`, with iptables): a real partition.

        `method` is "iptables" (per address and port; the default when iptables is installed) or
        "neighbour" (per address; needs only `ip`).
        """
        info = self.region(region)
        method = method or ("iptables" if shutil.which("iptables") else "neighbour")
        if method == "neighbour":
            port = None  # the neighbour method cuts the whole address
        if method == "iptables":
            rule = _iptables_rule(address, port)
            done = self.run(region, ["iptables", "-A", *rule])
            if done.returncode != 0:
                raise NetnsError(f"iptables in {region} failed: {done.stderr.strip()}")
        elif method == "neighbour":
            # Per destination address: the site needs its own address (`add_site`).
            done = self.run(
                region,
                [
                    "ip",
                    "neigh",
                    "replace",
                    address,
                    "lladdr",
                    BOGUS_MAC,
                    "dev",
                    info.inner_link,
                    "nud",
                    "permanent",
                ],
            )
            if done.returncode != 0:
                raise NetnsError(f"neighbour entry in {region} failed: {done.stderr.strip()}")
        else:
            raise ValueError(f"unknown partition method {method!r}; use 'iptables' or 'neighbour'")
        cut = Partition(region, address, port, method)
        self.partitions.append(cut)
        return cut

    def heal(self, cut: Partition) -> None:
        info = self.region(cut.region)
        if cut.method == "iptables":
            self.run(cut.region, ["iptables", "-D", *_iptables_rule(cut.address, cut.port)])
        else:
            others = [
                p
                for p in self.partitions
                if p is not cut and p.region == cut.region and p.address == cut.address
            ]
            if not others:
                self.run(cut.region, ["ip", "neigh", "del", cut.address, "dev", info.inner_link])
        if cut in self.partitions:
            self.partitions.remove(cut)

    def heal_all(self) -> None:
        for cut in list(self.partitions):
            self.heal(cut)

    def link_down(self, region: str) -> None:
        """Cut the whole region off the bridge (its veth goes down on both ends)."""
        _run(["ip", "link", "set", self.region(region).host_link, "down"])

    def link_up(self, region: str) -> None:
        _run(["ip", "link", "set", self.region(region).host_link, "up"])


def _iptables_rule(address: str, port: int | None) -> list[str]:
    rule = ["OUTPUT", "-d", f"{address}/32"]
    if port is not None:
        rule += ["-p", "tcp", "--dport", str(port)]
    return [*rule, "-j", "DROP"]


def _wait_for_pidfile(pidfile: Path, process: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = pidfile.read_text().strip() if pidfile.exists() else ""
        if text.isdigit():
            return int(text)
        if process.poll() is not None:
            raise NetnsError(f"process exited ({process.returncode}) before it started in the namespace")
        time.sleep(0.01)
    process.kill()
    raise NetnsError("the process did not report its PID from inside the namespace within 5 s")


@contextmanager
def _thread_in_namespace(target: Path) -> Iterator[None]:
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    there = os.open(target, os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET) != 0:
            raise NetnsError(f"setns into {target} failed: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:  # pragma: no cover - would leave the thread lost
                raise NetnsError(f"setns back home failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(there)
        os.close(home)
