"""`python -m storage.users add NAME --role officer|auditor|viewer` and `... token NAME`.

Passwords are read from stdin (when piped) or a hidden prompt, never from an argument: an
argument lands in shell history and in every process listing. A token is printed once; only
its hash is stored.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from sqlalchemy import select

from storage.connection import connect
from storage.errors import UserError
from storage.models import ROLES, User


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ")
    return first


def main(argv: list[str] | None = None) -> int:
    from storage.users import create_user, issue_token

    p = argparse.ArgumentParser(prog="python -m storage.users", description=__doc__.split("\n")[0])
    p.add_argument("--database-url", help="default: DATABASE_URL, else the app's SQLite file")
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="add a user (password from stdin or a prompt)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    tok = sub.add_parser("token", help="print a new API token for a user (replaces the old one)")
    tok.add_argument("name")
    args = p.parse_args(argv)
    db = connect(args.database_url, upgrade=True)
    try:
        with db.transaction() as s:
            if args.command == "add":
                user = create_user(s, args.name, args.role, _read_password(), actor="cli")
                print(f"user {user.name!r} added with role {user.role}")
            else:
                user = s.scalar(select(User).where(User.name == args.name.strip()))
                if user is None:
                    raise UserError(f"no user named {args.name!r}")
                print(issue_token(s, user, actor="cli"))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    return 0
