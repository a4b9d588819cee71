"""``python -m todo_app``: the same CLI as the ``todo-app`` script."""

import sys

from todo_app.cli import main

sys.exit(main())
