"""The command line (`n2w`, `python -m interp`): the command table (`registry`), the commands (`main`, `jobs`)."""
