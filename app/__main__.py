"""`python -m app`: serve with settings from RECSYS_* variables (the serving image's entry point)."""

from app.server import main

main()
