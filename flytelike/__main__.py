"""``python -m flytelike``: the same as the ``flytelike`` command."""

from flytelike._cli import main

main()
