"""The front door: the `wdsweep` command (main), its subcommands' glue (commands), and
`wdsweep analyze` on a study or a published table (analyze). Exit status 2 for bad
input, 1 for a fault (trainer/errors.py)."""
