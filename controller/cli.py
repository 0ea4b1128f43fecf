"""The `dockwright` command line: run the daemon, submit operations, follow and manage them."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Sequence

from sqlalchemy.exc import SQLAlchemyError

from controller.config import ConfigError, Settings, load_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"database_url": getattr(args, "database_url", None)}
    return load_settings(args.config, overrides=overrides)


class DatabaseMissing(Exception):
    """A read-only command names a SQLite file that does not exist."""


def _database(settings: Settings, *, migrate: bool = True) -> Any:
    """Open the database; commands that only read pass `migrate=False` and create nothing."""
    from controller.clients import migrate as migrations
    from controller.clients.database import Database
    from controller.clients.store import sqlite_path

    path = sqlite_path(settings.database_url)
    if not migrate and path is not None and not os.path.exists(path):
        raise DatabaseMissing(
            f"database file {path} does not exist; check --database-url or DOCKWRIGHT_DATABASE_URL "
            "(the daemon and `dockwright db upgrade` create it)"
        )
    database = Database(settings.database_url)
    if migrate:
        migrations.upgrade_if_needed(database.engine)
    return database


# dockwright run


def cmd_run(args: argparse.Namespace) -> int:
    import anyio

    from controller.clients import migrate as migrations
    from controller.config import unknown_variables
    from controller.logs import configure_logging, get_logger
    from controller.reactor.controller import Controller
    from controller.reactor.lock import AlreadyRunning

    settings = _settings(args)
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    for name in unknown_variables():
        get_logger().warning("config.unknown_variable", message=f"environment variable {name} names no setting and is ignored; check its spelling")
    controller = Controller(settings)
    try:
        controller.acquire()
    except AlreadyRunning as exc:
        print(f"dockwright: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        if settings.migrate_on_start:
            migrations.upgrade_if_needed(controller.database.engine)
        anyio.run(controller.run)
    finally:
        controller.close()
    return EXIT_OK


# dockwright db upgrade / cleanup


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from controller.clients import migrate as migrations
    from controller.clients.database import Database

    database = Database(_settings(args).database_url)
    before = migrations.current_revision(database.engine)
    migrations.upgrade(database.engine)
    after = migrations.current_revision(database.engine)
    print(f"database schema at revision {after} (was {before or 'empty'})")
    return EXIT_OK


def cmd_cleanup(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from controller.clients.database import utc_now

    settings = _settings(args)
    days = args.days if args.days is not None else settings.log_retention_days
    if days < 0:
        raise ConfigError(f"--days must not be negative, got {days:g}; 0 deletes the logs of every finished operation")
    database = _database(settings)
    cutoff = utc_now() - timedelta(days=days)
    deleted = database.delete_logs_before(cutoff)
    print(f"deleted {deleted} log rows of operations finished more than {days:g} days ago")
    return EXIT_OK


# dockwright submit


def _parse_pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} takes KEY=VALUE, got {value!r}")
        pairs[key] = item
    return pairs


def _extend_list(spec: dict[str, Any], key: str, values: list[str], flag: str) -> None:
    if not values:
        return
    current = spec.get(key, [])
    if not isinstance(current, list):
        raise ConfigError(f"{flag} adds to the list form of {key!r}, but --spec gives {key} as {type(current).__name__}")
    spec[key] = current + values


def _merge_pairs(spec: dict[str, Any], key: str, pairs: dict[str, str], flag: str) -> None:
    """Add KEY=VALUE pairs to a Compose key that may be a mapping or a list of KEY=VALUE."""
    if not pairs:
        return
    current = spec.get(key, {})
    if isinstance(current, list):
        spec[key] = current + [f"{name}={value}" for name, value in pairs.items()]
    elif isinstance(current, dict):
        spec[key] = {**current, **pairs}
    else:
        raise ConfigError(f"{flag} adds to {key!r}, but --spec gives {key} as {type(current).__name__}")


def _start_spec(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.compose_file:
        # The daemon reads the file from its own working directory, so store an absolute path.
        spec: dict[str, Any] = {"compose_file": os.path.abspath(args.compose_file), "service": args.service}
        if args.project:
            spec["project"] = args.project
        return spec
    try:
        spec = json.loads(args.spec) if args.spec else {}
    except ValueError as exc:
        raise ConfigError(f"--spec {args.spec!r} is not valid JSON ({exc}); give a JSON object of Compose service keys") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"--spec must be a JSON object of Compose service keys, got {args.spec!r}")
    _extend_list(spec, "ports", args.publish, "-p")
    _merge_pairs(spec, "environment", _parse_pairs(args.env, "--env"), "-e")
    _merge_pairs(spec, "labels", _parse_pairs(args.label, "--label"), "--label")
    _extend_list(spec, "volumes", args.volume, "-v")
    _extend_list(spec, "networks", args.network, "--network")
    if args.restart:
        spec["restart"] = args.restart
    if args.cmd_args:
        spec["command"] = args.cmd_args
    return spec or None


def _validate_submission(values: dict[str, Any]) -> None:
    """Check the row as the daemon will, so a bad submission is rejected before it is stored."""
    from controller.errors import SpecError
    from controller.specs.reference import parse_reference
    from controller.specs.row import parse_request

    def as_json(value: Any) -> str | None:
        return json.dumps(value) if value is not None else None

    try:
        parse_request(
            type=values["type"],
            container=values.get("container"),
            image=values.get("image"),
            spec=as_json(values.get("spec")),
            options=as_json(values.get("options")),
        )
        if values.get("image"):
            parse_reference(values["image"], field="image")
    except SpecError as exc:
        raise ConfigError(f"invalid {values['type']} operation, nothing submitted: {exc}") from None


def cmd_submit(args: argparse.Namespace) -> int:
    settings = _settings(args)
    options: dict[str, Any] = {}
    values: dict[str, Any] = {"host": args.host or settings.host, "priority": args.priority}

    if args.kind == "start":
        if args.compose_file and not args.service:
            raise ConfigError("--compose-file needs --service to name the service to start")
        values.update(type="start", container=args.name, image=args.image, spec=_start_spec(args))
        if args.pull:
            options["pull"] = args.pull
        if args.replace:
            options["replace"] = True
    elif args.kind == "recreate":
        values.update(type="recreate", container=args.container, image=args.image)
    else:
        values.update(type="update_image", image=args.reference)
        if args.recreate:
            options["recreate"] = True
    if args.max_attempts is not None:
        options["max_attempts"] = args.max_attempts
    if options:
        values["options"] = options
    _validate_submission(values)

    database = _database(settings)
    op_id = database.insert(**{k: v for k, v in values.items() if v is not None})
    print(f"submitted operation {op_id} ({values['type']})")
    if not args.wait:
        return EXIT_OK
    return _wait(database, op_id, timeout=args.timeout)


def _wait(database: Any, op_id: int, *, timeout: float | None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from controller.clients.schema import TERMINAL_STATUSES

    console = Console(stderr=True)
    deadline = time.monotonic() + timeout if timeout else None
    with Progress(
        TextColumn("[bold]#{task.fields[op]}[/bold] {task.fields[status]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("waiting", total=100, op=op_id, status="pending")
        while True:
            row = database.get(op_id)
            progress.update(task, completed=row.progress, description=row.message or "", status=row.status)
            if row.status in TERMINAL_STATUSES:
                break
            if deadline is not None and time.monotonic() > deadline:
                console.print(f"operation {op_id} still {row.status} after {timeout:g} s; it goes on in the background")
                return EXIT_FAILED
            time.sleep(0.25)

    if row.status == "completed":
        console.print(f"operation {op_id} completed: {row.message}")
        return EXIT_OK
    console.print(f"operation {op_id} {row.status}: {row.error or row.message}", style="red")
    return EXIT_FAILED


# dockwright ops


def _row_mapping(row: Any) -> dict[str, Any]:
    from controller.specs.redact import redact, redact_opaque

    data = {name: getattr(row, name) for name in row.__dataclass_fields__}
    for key in ("spec", "options", "result"):
        if data[key]:
            try:
                data[key] = json.loads(data[key])
            except ValueError:
                data[key] = redact_opaque(data[key])
    for key, value in data.items():
        if hasattr(value, "isoformat"):
            data[key] = value.isoformat(sep=" ", timespec="milliseconds")
    return redact(data)


def cmd_ops_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    database = _database(_settings(args), migrate=False)
    rows = database.list(status=args.status, type=args.type, container=args.container, limit=args.limit)
    if args.json:
        print(json.dumps([_row_mapping(row) for row in rows], indent=2, default=str))
        return EXIT_OK
    table = Table("id", "type", "container / image", "status", "progress", "message", "created (UTC)")
    for row in rows:
        table.add_row(
            str(row.id),
            row.type,
            row.container or row.image or "",
            row.status,
            f"{row.progress}%",
            (row.error or row.message or "")[:80],
            row.created_at.strftime("%Y-%m-%d %H:%M:%S") if row.created_at else "",
        )
    Console().print(table)
    return EXIT_OK


def cmd_ops_show(args: argparse.Namespace) -> int:
    database = _database(_settings(args), migrate=False)
    row = database.get(args.id)
    if row is None:
        print(f"dockwright: no operation with id {args.id}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(_row_mapping(row), indent=2, default=str))
    return EXIT_OK


def _print_log(log: Any) -> None:
    from controller.specs.redact import redact

    details = ""
    if log.details:
        try:
            parsed = redact(json.loads(log.details))
            if isinstance(parsed, dict) and parsed.get("cli"):
                details = f"  $ {parsed['cli']}"
        except ValueError:
            pass
    # A time that another service wrote malformed reads as None.
    shown_time = f"{log.created_at:%H:%M:%S.%f}"[:-3] if log.created_at else "--:--:--.---"
    print(f"{shown_time} {log.level:<7} {log.message}{details}", flush=True)


def cmd_ops_logs(args: argparse.Namespace) -> int:
    from controller.clients.schema import TERMINAL_STATUSES

    database = _database(_settings(args), migrate=False)
    if database.get(args.id) is None:
        print(f"dockwright: no operation with id {args.id}", file=sys.stderr)
        return EXIT_FAILED
    after = 0
    while True:
        for log in database.logs(args.id, after=after, level=args.level):
            _print_log(log)
            after = log.id
        if not args.follow:
            return EXIT_OK
        row = database.get(args.id)
        if row.status in TERMINAL_STATUSES:
            for log in database.logs(args.id, after=after, level=args.level):
                _print_log(log)
            return EXIT_OK if row.status == "completed" else EXIT_FAILED
        time.sleep(0.5)


def cmd_ops_cancel(args: argparse.Namespace) -> int:
    database = _database(_settings(args), migrate=False)
    row = database.request_cancel(args.id)
    if row is None:
        print(f"dockwright: no operation with id {args.id}", file=sys.stderr)
        return EXIT_FAILED
    if row.status in ("completed", "failed", "cancelled"):
        print(f"operation {args.id} already ended as {row.status}; nothing to cancel")
        return EXIT_FAILED
    print(f"cancellation of operation {args.id} requested (status {row.status})")
    return EXIT_OK


# Parser


def _priority(text: str) -> int:
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"priority {text} is outside the 64-bit integer range")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockwright", description="Carry out Docker operations recorded in a SQL table.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="YAML settings file (default: $DOCKWRIGHT_CONFIG)")
    common.add_argument("--database-url", help="database URL (default: $DOCKWRIGHT_DATABASE_URL or sqlite:///dockwright.db)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", parents=[common], help="run the controller daemon")
    run.set_defaults(handler=cmd_run)

    db = commands.add_parser("db", help="manage the database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade = db_commands.add_parser("upgrade", parents=[common], help="create or upgrade the tables")
    upgrade.set_defaults(handler=cmd_db_upgrade)

    cleanup = commands.add_parser("cleanup", parents=[common], help="delete old log rows of finished operations")
    cleanup.add_argument("--days", type=float, help="keep logs of the last DAYS days (default: log_retention_days)")
    cleanup.set_defaults(handler=cmd_cleanup)

    submit = commands.add_parser("submit", help="insert an operation row")
    kinds = submit.add_subparsers(dest="kind", required=True, metavar="TYPE")
    submit_common = argparse.ArgumentParser(add_help=False, parents=[common])
    submit_common.add_argument("--wait", action="store_true", help="show progress until the operation ends; exit 1 unless it completes")
    submit_common.add_argument("--timeout", type=float, help="with --wait, stop waiting after this many seconds")
    submit_common.add_argument("--priority", type=_priority, default=0, help="higher runs first (default 0)")
    submit_common.add_argument("--host", help="the controller host group that runs it (default: the configured host)")
    submit_common.add_argument("--max-attempts", type=int, help="tries on transient errors (default 5)")

    start = kinds.add_parser("start", parents=[submit_common], help="create and start a container")
    start.add_argument("name", nargs="?", help="container name")
    start.add_argument("--image", help="image reference, e.g. localhost:5001/demo/web:1")
    start.add_argument("-p", "--publish", action="append", default=[], help="port, Compose short form, e.g. 127.0.0.1:18080:8080")
    start.add_argument("-e", "--env", action="append", default=[], help="environment variable KEY=VALUE")
    start.add_argument("-l", "--label", action="append", default=[], help="label KEY=VALUE")
    start.add_argument("-v", "--volume", action="append", default=[], help="volume, Compose short form, e.g. data:/data")
    start.add_argument("--network", action="append", default=[], help="network to join")
    start.add_argument("--restart", help="restart policy: no, always, on-failure[:N], unless-stopped")
    start.add_argument("--spec", help="Compose service keys as a JSON object")
    start.add_argument("--compose-file", help="compose file to take the service from")
    start.add_argument("--service", help="with --compose-file, the service to start")
    start.add_argument("--project", help="with --compose-file, the Compose project name")
    start.add_argument("--pull", choices=["missing", "always", "never"], help="pull policy (default missing)")
    start.add_argument("--replace", action="store_true", help="replace a container of that name with a different spec")
    start.epilog = "A command for the container goes after --, e.g. `dockwright submit start web --image REF -- sleep 60`."

    recreate = kinds.add_parser("recreate", parents=[submit_common], help="replace a container by one from the newest image")
    recreate.add_argument("container", help="container name")
    recreate.add_argument("--image", help="new image reference (default: the container's own reference)")

    update = kinds.add_parser("update-image", parents=[submit_common], help="pull an image when the registry has a newer one")
    update.add_argument("reference", help="image reference, e.g. localhost:5001/team/app:1")
    update.add_argument("--recreate", action="store_true", help="then recreate each container that uses it")
    submit.set_defaults(handler=cmd_submit)

    ops = commands.add_parser("ops", help="list, show, follow and cancel operations")
    ops_commands = ops.add_subparsers(dest="ops_command", required=True, metavar="COMMAND")
    listing = ops_commands.add_parser("list", parents=[common], help="list operations, newest first")
    listing.add_argument("--status", choices=["pending", "in_progress", "completed", "failed", "cancelled"])
    listing.add_argument("--type", choices=["start", "recreate", "update_image"])
    listing.add_argument("--container")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_ops_list)
    show = ops_commands.add_parser("show", parents=[common], help="show one operation as JSON")
    show.add_argument("id", type=int)
    show.set_defaults(handler=cmd_ops_show)
    logs = ops_commands.add_parser("logs", parents=[common], help="print an operation's log")
    logs.add_argument("id", type=int)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the operation ends")
    logs.add_argument("--level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="minimum level")
    logs.set_defaults(handler=cmd_ops_logs)
    cancel = ops_commands.add_parser("cancel", parents=[common], help="request cancellation")
    cancel.add_argument("id", type=int)
    cancel.set_defaults(handler=cmd_ops_cancel)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` is the container's command, never options of ours.
    command: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    args = parser.parse_args(argv)
    if command and not (args.command == "submit" and args.kind == "start"):
        parser.error("only `submit start` takes a container command after --")
    args.cmd_args = command or None
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(f"dockwright: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DatabaseMissing as exc:
        print(f"dockwright: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except SQLAlchemyError as exc:
        from controller.clients.database import SQLITE_BUSY_TIMEOUT_MS
        from controller.config import redact_url

        reason = str(getattr(exc, "orig", None) or exc)
        try:
            url = redact_url(_settings(args).database_url)
        except Exception:  # noqa: BLE001 - the message names what it can
            url = redact_url(args.database_url or "") or "from the settings"
        if "locked" in reason:
            reason += (
                f"; another process held its write lock for more than {SQLITE_BUSY_TIMEOUT_MS // 1000} s, "
                "so try again when that process is done"
            )
        print(f"dockwright: database {url} failed: {reason}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`dockwright ops logs 7 | head`); leave quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
