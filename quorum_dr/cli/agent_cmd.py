"""`drctl agent --config agent.yaml [--check]`: run the site agent of this database host.

Serves the signed operations on the local PostgreSQL (status, freeze, unfreeze, stop, start,
follow, rewind, rebuild, promote) and the fence_main / before_promote hooks until SIGTERM or
Ctrl-C; one log line per request on stderr. `--check` reads the config and the files it names, prints OK and
exits. Exit codes: 0 stopped by SIGTERM (or `--check` passed); 2 bad config, secret file,
certificate or listen address (one `FILE: field: reason` line each); 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys

from quorum_dr.cli.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from quorum_dr.config import ConfigError


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    agent = subparsers.add_parser(
        "agent",
        help="run the site agent of this database host (signed local PostgreSQL operations)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    agent.add_argument("--config", required=True, help="path to the agent's YAML config")
    agent.add_argument("--check", action="store_true", help="check the config and its files, then exit")
    agent.set_defaults(func=run_agent)


def run_agent(args: argparse.Namespace) -> int:
    # the server's modules load psycopg2 and the HTTP server: only for this command
    from quorum_dr.agent.config import build_postgres, load_agent_config
    from quorum_dr.agent.server import build_server, serve

    source = args.config
    try:
        config = load_agent_config(source)
        if args.check:
            build_postgres(config, source)
            where = f"{config.listen.host}:{config.listen.port}"
            print(f"OK: the agent would listen on {where} for the cluster in {config.database.data_dir}")
            return EXIT_OK
        server = build_server(config, source)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return EXIT_BAD_INPUT
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(server)
    return EXIT_OK
