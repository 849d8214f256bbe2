"""``python -m matchday.cli``: what the server runs its worker beside itself with."""

from matchday.cli import main

main()
