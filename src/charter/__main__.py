"""`python -m charter`: run the `charter` command line."""

from charter.cli import main

main()
