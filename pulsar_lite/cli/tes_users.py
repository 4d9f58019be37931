"""``pulsar-lite tes-user add|remove|list``: the TES users file (``tes_users_file``; docs/tes.md).

``add NAME`` reads the password from stdin when it is not a terminal (its first line), else asks for it twice
without echo, or makes one (``--generate``, printed once). Only the salted hash is written; the file is
created with mode 0600 and replaced in one rename, and a running daemon reads it again by itself.
"""
from __future__ import annotations

import getpass
import os
import secrets
import sys

from ..errors import ConfigError

#: shorter passwords are refused: a leaked users file must not give them away to a dictionary attack at once
MIN_PASSWORD = 12


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a user, or set a user's password")
    remove = actions.add_parser("remove", help="remove a user (their tasks stay, seen by tes_token holders)")
    listing = actions.add_parser("list", help="the users' names")
    for action in (add, remove, listing):
        where = action.add_mutually_exclusive_group(required=True)
        where.add_argument("--file", "-f", metavar="USERS_FILE", help="the users file")
        where.add_argument("--config", "-c", metavar="APP_YML", help="the daemon's app.yml: its tes_users_file")
    for action in (add, remove):
        action.add_argument("name", help="the user's name (letters, digits and ._@+-)")
    add.add_argument("--generate", action="store_true", help="make a random password and print it once")
    add.add_argument("--iterations", type=int, default=None, help="PBKDF2 iterations (default 600000)")


def users_file(args) -> str:
    if args.file:
        return os.path.abspath(args.file)
    from ..config import load_config

    path = load_config(args.config).tes_users_file
    if not path:
        raise ConfigError(f"{args.config}: tes_users_file is not set (set it, or give --file)")
    return path


def read_password(name: str, generate: bool) -> str:
    if generate:
        password = secrets.token_urlsafe(24)
        print(f"password of {name} (shown once): {password}")
        return password
    if sys.stdin.isatty():
        password = getpass.getpass(f"password of {name}: ")
        if getpass.getpass("again: ") != password:
            raise ValueError("the two passwords differ")
        return password
    return sys.stdin.readline().rstrip("\r\n")


def run(args) -> int:
    from ..tes import passwords

    path = users_file(args)
    if args.action == "list":
        for name in passwords.read_users(path):
            print(name)
        return 0
    if not passwords.valid_name(args.name):
        print(f"pulsar-lite tes-user: {args.name!r} is not a user name (letters, digits and ._@+-, at most 64)",
              file=sys.stderr)
        return 2
    if args.action == "remove":
        if not os.path.exists(path) or args.name not in passwords.read_users(path):
            print(f"pulsar-lite tes-user: no user {args.name} in {path}", file=sys.stderr)
            return 1
        passwords.write_user(path, args.name, None)
        print(f"removed {args.name} from {path}")
        return 0
    try:
        password = read_password(args.name, args.generate)
    except (ValueError, EOFError) as exc:
        print(f"pulsar-lite tes-user: {exc or 'no password given'}", file=sys.stderr)
        return 1
    if len(password) < MIN_PASSWORD:
        print(f"pulsar-lite tes-user: the password must be at least {MIN_PASSWORD} characters (--generate makes "
              f"one)", file=sys.stderr)
        return 1
    try:
        encoded = passwords.hash_password(password, args.iterations or passwords.DEFAULT_ITERATIONS)
    except ValueError as exc:
        print(f"pulsar-lite tes-user: {exc}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(path), exist_ok=True)
    existed = passwords.write_user(path, args.name, encoded)
    print(f"{'changed the password of' if existed else 'added'} {args.name} in {path}")
    return 0
