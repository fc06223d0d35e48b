"""``python -m workstack``."""

from workstack.main import main

main()
