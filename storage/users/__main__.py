"""`python -m storage.users add NAME --role ROLE` / `token NAME` (see storage.users_cli)."""

import sys

from storage.users_cli import main

sys.exit(main())
